//! The Flink SQL text of a logical type (`INT NOT NULL`, `MAP<STRING, INT>`), as the schema
//! of a result shows it.

use crate::sql_gateway::LogicalTypeJson;

/// Writes a logical type as Flink SQL would spell it: `INT NOT NULL`, `STRING`,
/// `DECIMAL(10, 2)`, ``ROW<`a` INT>``.
pub(super) fn logical_type_sql(t: &LogicalTypeJson) -> String {
    let with_precision = |name: &str| match t.precision {
        Some(p) => format!("{name}({p})"),
        None => name.to_owned(),
    };
    let base = match t.type_root.as_str() {
        "NULL" => return "NULL".to_owned(),
        "INTEGER" => "INT".to_owned(),
        "CHAR" => sized("CHAR", t.length),
        "VARCHAR" if t.length == Some(i32::MAX) => "STRING".to_owned(),
        "VARCHAR" => sized("VARCHAR", t.length),
        "BINARY" => sized("BINARY", t.length),
        "VARBINARY" if t.length == Some(i32::MAX) => "BYTES".to_owned(),
        "VARBINARY" => sized("VARBINARY", t.length),
        "DECIMAL" => match (t.precision, t.scale) {
            (Some(p), Some(s)) => format!("DECIMAL({p}, {s})"),
            (Some(p), None) => format!("DECIMAL({p})"),
            _ => "DECIMAL".to_owned(),
        },
        "TIME_WITHOUT_TIME_ZONE" => with_precision("TIME"),
        "TIMESTAMP_WITHOUT_TIME_ZONE" => with_precision("TIMESTAMP"),
        "TIMESTAMP_WITH_LOCAL_TIME_ZONE" => with_precision("TIMESTAMP_LTZ"),
        "TIMESTAMP_WITH_TIME_ZONE" => format!("{} WITH TIME ZONE", with_precision("TIMESTAMP")),
        "INTERVAL_YEAR_MONTH" => "INTERVAL YEAR TO MONTH".to_owned(),
        "INTERVAL_DAY_TIME" => "INTERVAL DAY TO SECOND".to_owned(),
        "ARRAY" => format!("ARRAY<{}>", nested_sql(t.element_type.as_deref())),
        "MULTISET" => format!("MULTISET<{}>", nested_sql(t.element_type.as_deref())),
        "MAP" => format!(
            "MAP<{}, {}>",
            nested_sql(t.key_type.as_deref()),
            nested_sql(t.value_type.as_deref())
        ),
        "ROW" => {
            let fields: Vec<String> = t
                .fields
                .iter()
                .flatten()
                .map(|f| {
                    let mut field = format!(
                        "`{}` {}",
                        f.name.replace('`', "``"),
                        logical_type_sql(&f.field_type)
                    );
                    if let Some(description) = &f.description {
                        field.push_str(&format!(" '{}'", description.replace('\'', "''")));
                    }
                    field
                })
                .collect();
            format!("ROW<{}>", fields.join(", "))
        }
        other => other.to_owned(),
    };
    if t.nullable {
        base
    } else {
        format!("{base} NOT NULL")
    }
}

fn sized(name: &str, length: Option<i32>) -> String {
    match length {
        Some(length) => format!("{name}({length})"),
        None => name.to_owned(),
    }
}

fn nested_sql(t: Option<&LogicalTypeJson>) -> String {
    t.map(logical_type_sql).unwrap_or_else(|| "?".to_owned())
}

#[cfg(test)]
mod tests {
    use super::super::logical_type_to_proto;
    use super::super::test_support::ty;

    #[test]
    fn string_and_bytes_types_get_their_short_names() {
        let string_type = ty(r#"{"type":"VARCHAR","nullable":true,"length":2147483647}"#);
        assert_eq!(logical_type_to_proto(&string_type).sql, "STRING");
        let bytes_type = ty(r#"{"type":"VARBINARY","nullable":false,"length":2147483647}"#);
        assert_eq!(logical_type_to_proto(&bytes_type).sql, "BYTES NOT NULL");
        let null_type = ty(r#"{"type":"NULL"}"#);
        assert_eq!(logical_type_to_proto(&null_type).sql, "NULL");
        let zoned = ty(r#"{"type":"TIMESTAMP_WITH_TIME_ZONE","nullable":true,"precision":6}"#);
        assert_eq!(
            logical_type_to_proto(&zoned).sql,
            "TIMESTAMP(6) WITH TIME ZONE"
        );
        let multiset = ty(
            r#"{"type":"MULTISET","nullable":true,"elementType":{"type":"VARCHAR","nullable":true,"length":10}}"#,
        );
        assert_eq!(
            logical_type_to_proto(&multiset).sql,
            "MULTISET<VARCHAR(10)>"
        );
    }
}
