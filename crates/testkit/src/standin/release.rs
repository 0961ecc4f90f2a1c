//! The Flink releases the stand-in can answer as. The recorded transcripts replay unchanged
//! against real 1.19.3, 1.20.3 and 2.1.3 gateways except for what this module decides:
//! `GET /api_versions` (1.19.3: V1–V2, 1.20.3: V1–V3, 2.1.3: V1–V4), the version `/v{n}/info`
//! and the JobManager report, and the versioned URLs that exist (1.19.3 has no `/v3/…`, so its
//! V3 `complete-statement` is a 404). A 2.1.3 gateway answers `/v4/…` as it answers `/v3/…`
//! for everything the transcripts cover.

use std::fmt;
use std::str::FromStr;

/// A Flink release, as the stand-in answers for it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FlinkRelease {
    /// Flink 1.19.3, the release the original design documents; its gateway speaks V1–V2.
    V1_19,
    /// Flink 1.20.3, the release the transcripts were recorded on; V1–V3.
    #[default]
    V1_20,
    /// Flink 2.1.3; V1–V4.
    V2_1,
}

impl FlinkRelease {
    /// Every release the stand-in answers as, oldest first.
    pub const ALL: [FlinkRelease; 3] =
        [FlinkRelease::V1_19, FlinkRelease::V1_20, FlinkRelease::V2_1];

    /// The version `/info`, `/config` and `/overview` report.
    pub fn version(self) -> &'static str {
        match self {
            FlinkRelease::V1_19 => "1.19.3",
            FlinkRelease::V1_20 => "1.20.3",
            FlinkRelease::V2_1 => "2.1.3",
        }
    }

    /// The REST API versions `GET /api_versions` lists.
    pub fn api_versions(self) -> &'static [&'static str] {
        match self {
            FlinkRelease::V1_19 => &["V1", "V2"],
            FlinkRelease::V1_20 => &["V1", "V2", "V3"],
            FlinkRelease::V2_1 => &["V1", "V2", "V3", "V4"],
        }
    }

    /// The highest REST API version, as a number.
    pub fn latest_api(self) -> u32 {
        self.api_versions().len() as u32
    }
}

impl fmt::Display for FlinkRelease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.version())
    }
}

impl FromStr for FlinkRelease {
    type Err = String;

    /// `1.19`, `1.20`, `2.1`, or the patch releases `1.19.3`, `1.20.3`, `2.1.3`.
    fn from_str(s: &str) -> Result<FlinkRelease, String> {
        FlinkRelease::ALL
            .into_iter()
            .find(|release| {
                let version = release.version();
                s == version
                    || version
                        .rsplit_once('.')
                        .is_some_and(|(minor, _)| s == minor)
            })
            .ok_or_else(|| {
                format!("unknown Flink release {s:?}; expected one of 1.19.3, 1.20.3, 2.1.3")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_parse_by_minor_or_patch_version() {
        assert_eq!("1.19".parse(), Ok(FlinkRelease::V1_19));
        assert_eq!("1.20.3".parse(), Ok(FlinkRelease::V1_20));
        assert_eq!("2.1".parse(), Ok(FlinkRelease::V2_1));
        assert!("1.18".parse::<FlinkRelease>().is_err());
        assert!("1.1".parse::<FlinkRelease>().is_err());
        assert_eq!(FlinkRelease::V2_1.latest_api(), 4);
    }
}
