//! The cluster's one TaskManager as the JobManager REST API shows it: `GET /taskmanagers` and
//! `GET /taskmanagers/{id}/metrics[?get=...]`, in the layout a Flink 1.20.3 JobManager answers
//! with. Its JVM memory grows with the jobs the cluster ran (metaspace: each job's classes) and
//! runs (heap), always below the limits the TaskManager's memory configuration sets.
//!
//! A real JobManager fetches TaskManager metrics in the background and answers `[]` until its
//! first fetch; the stand-in answers with values from the first request.

use serde_json::{Value as Json, json};

use super::super::gateway::Reply;
use super::ok;

/// The TaskManager's id: its address and a random suffix, as a standalone cluster names it
/// (the recorded exception transcripts name this one).
pub const TASKMANAGER_ID: &str = "127.0.0.1:6122-a86532";
const TASKMANAGER_PATH: &str = "pekko.tcp://flink@127.0.0.1:6122/user/rpc/taskmanager_0";

/// The memory configuration of a TaskManager with `taskmanager.memory.process.size: 1536m`.
const JVM_METASPACE: u64 = 268_435_456;
const HEAP_MAX: u64 = 436_207_616;
/// What the recorded TaskManager used before running any job.
const IDLE_METASPACE_USED: u64 = 38_437_336;
const IDLE_HEAP_USED: u64 = 34_402_096;
/// What each job adds: the classes it loads (kept until the TaskManager restarts), and the
/// heap its running tasks hold.
const METASPACE_PER_JOB_RUN: u64 = 2_097_152;
const HEAP_PER_RUNNING_JOB: u64 = 8_388_608;

/// The metrics the TaskManager reports, in the order `GET /taskmanagers/{id}/metrics` lists them.
const METRIC_NAMES: [&str; 4] = [
    "Status.JVM.Memory.Metaspace.Used",
    "Status.JVM.Memory.Metaspace.Max",
    "Status.JVM.Memory.Heap.Used",
    "Status.JVM.Memory.Heap.Max",
];

/// `GET /taskmanagers`: the one TaskManager, with `slots - running` slots free.
pub fn list(slots: i64, running: i64) -> Reply {
    let resource = |slots_counted: i64| {
        let share = |per_slot_mb: i64| per_slot_mb * slots_counted / slots.max(1);
        json!({
            "cpuCores": slots_counted as f64,
            "taskHeapMemory": share(287),
            "taskOffHeapMemory": 0,
            "managedMemory": share(435),
            "networkMemory": share(108),
            "extendedResources": {},
        })
    };
    let free = (slots - running).max(0);
    ok(json!({
        "taskmanagers": [{
            "id": TASKMANAGER_ID,
            "path": TASKMANAGER_PATH,
            "dataPort": 45427,
            "jmxPort": -1,
            "timeSinceLastHeartbeat": 1_796_401_592_436_i64,
            "slotsNumber": slots,
            "freeSlots": free,
            "totalResource": resource(slots),
            "freeResource": resource(free),
            "hardware": {
                "cpuCores": 2,
                "physicalMemory": 25_276_203_008_i64,
                "freeMemory": HEAP_MAX,
                "managedMemory": 456_340_282,
            },
            "memoryConfiguration": {
                "frameworkHeap": 134_217_728,
                "taskHeap": 301_989_880,
                "frameworkOffHeap": 134_217_728,
                "taskOffHeap": 0,
                "networkMemory": 114_085_070,
                "managedMemory": 456_340_282,
                "jvmMetaspace": JVM_METASPACE,
                "jvmOverhead": 201_326_592,
                "totalFlinkMemory": 1_140_850_688,
                "totalProcessMemory": 1_610_612_736,
            },
        }],
    }))
}

/// `GET /taskmanagers/{id}/metrics`: without `get`, the names of the metrics reported; with
/// `get=a,b`, the value (a string) of each one reported, in the order asked. An unknown
/// TaskManager, like an unknown metric, has none: the answer is `[]`, not an error.
pub fn metrics(id: &str, query: Option<&str>, jobs_run: u64, running: u64) -> Reply {
    if percent_decode(id) != TASKMANAGER_ID {
        return ok(json!([]));
    }
    let asked = query
        .into_iter()
        .flat_map(|query| query.split('&'))
        .find_map(|pair| pair.strip_prefix("get="))
        .map(percent_decode);
    let Some(asked) = asked else {
        let names: Vec<Json> = METRIC_NAMES
            .iter()
            .map(|name| json!({ "id": name }))
            .collect();
        return ok(Json::Array(names));
    };
    let metaspace_used =
        (IDLE_METASPACE_USED + METASPACE_PER_JOB_RUN * jobs_run).min(JVM_METASPACE - 1);
    let heap_used = (IDLE_HEAP_USED + HEAP_PER_RUNNING_JOB * running).min(HEAP_MAX - 1);
    let value = |name: &str| match name {
        "Status.JVM.Memory.Metaspace.Used" => Some(metaspace_used),
        "Status.JVM.Memory.Metaspace.Max" => Some(JVM_METASPACE),
        "Status.JVM.Memory.Heap.Used" => Some(heap_used),
        "Status.JVM.Memory.Heap.Max" => Some(HEAP_MAX),
        _ => None,
    };
    let values: Vec<Json> = asked
        .split(',')
        .filter_map(|name| {
            value(name.trim()).map(|bytes| json!({"id": name.trim(), "value": bytes.to_string()}))
        })
        .collect();
    ok(Json::Array(values))
}

/// Decodes `%XX` escapes (a `,` sent as `%2C`, a `:` as `%3A`); anything else stays as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%')
            .then(|| text.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                index += 3;
            }
            None => {
                decoded.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(reply: Reply) -> Json {
        assert_eq!(reply.status, 200);
        serde_json::from_str(&reply.body).expect("json")
    }

    #[test]
    fn the_list_names_the_one_taskmanager_and_its_free_slots() {
        let list = body(list(4, 1));
        assert_eq!(list["taskmanagers"][0]["id"], TASKMANAGER_ID);
        assert_eq!(list["taskmanagers"][0]["freeSlots"], 3);
        assert_eq!(
            list["taskmanagers"][0]["memoryConfiguration"]["jvmMetaspace"],
            JVM_METASPACE
        );
    }

    #[test]
    fn metrics_answer_what_was_asked_as_strings_and_grow_with_jobs() {
        let query =
            "get=Status.JVM.Memory.Metaspace.Used%2CStatus.JVM.Memory.Metaspace.Max,No.Such";
        let idle = body(metrics(TASKMANAGER_ID, Some(query), 0, 0));
        assert_eq!(
            idle,
            json!([
                {"id": "Status.JVM.Memory.Metaspace.Used", "value": IDLE_METASPACE_USED.to_string()},
                {"id": "Status.JVM.Memory.Metaspace.Max", "value": JVM_METASPACE.to_string()},
            ])
        );
        let busy = body(metrics("127.0.0.1%3A6122-a86532", Some(query), 3, 1));
        assert_eq!(
            busy[0]["value"],
            (IDLE_METASPACE_USED + 3 * METASPACE_PER_JOB_RUN).to_string()
        );
        let full = body(metrics(TASKMANAGER_ID, Some(query), 1_000, 0));
        assert_eq!(full[0]["value"], (JVM_METASPACE - 1).to_string());
    }

    #[test]
    fn unknown_taskmanagers_have_no_metrics_and_no_get_lists_names() {
        let query = Some("get=Status.JVM.Memory.Heap.Used");
        assert_eq!(body(metrics("nosuch", query, 0, 0)), json!([]));
        let names = body(metrics(TASKMANAGER_ID, None, 0, 0));
        assert_eq!(names[0], json!({"id": "Status.JVM.Memory.Metaspace.Used"}));
    }
}
