//! The HTTP API and the registry behind it: auth, errors naming the field,
//! agent snapshots and states (online, offline, stale), configs on connect,
//! tasks round-tripped (also across a reconnect), metrics.

mod common;

use agent_core::message::{Message, TaskResult};
use common::agent::{run_agent, AgentSpec};
use common::raw::{hello, Got, Raw};
use common::{collector, http, json, wait_for, CollectorProc, TempDir};
use std::net::SocketAddr;
use std::time::Duration;

const KEY: &str = "api-key-for-the-tests";

fn start(dir: &TempDir) -> (CollectorProc, SocketAddr) {
    let col = collector().start(
        dir.path(),
        &["--api-token", KEY, "--api-listen", "127.0.0.1:0", "--registry-flush", "0.1", "--heartbeat-interval", "1", "--stale-after", "2"],
    );
    let api = col.api.unwrap();
    (col, api)
}

fn get(api: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let (s, b) = http(api, "GET", path, Some(KEY), None);
    (s, if b.is_empty() { serde_json::Value::Null } else { json(&b) })
}

fn status_of(api: SocketAddr, id: &str) -> Option<String> {
    let (s, a) = get(api, &format!("/agents/{id}"));
    (s == 200).then(|| a["status"].as_str().unwrap().to_string())
}

#[test]
fn auth_errors_and_unknown_agents() {
    let dir = TempDir::new("api-errors");
    let (_col, api) = start(&dir);
    assert_eq!(http(api, "GET", "/agents", None, None).0, 401);
    assert_eq!(http(api, "GET", "/agents", Some("wrong"), None).0, 401);
    let (s, b) = get(api, "/agents");
    assert_eq!((s, b["agents"].as_array().unwrap().len()), (200, 0));
    assert_eq!(get(api, "/agents/nobody").0, 404);
    assert_eq!(get(api, "/tasks/nothing").0, 404);
    let post = |body: &str| {
        let (s, b) = http(api, "POST", "/agents/nobody/tasks", Some(KEY), Some(body));
        (s, json(&b))
    };
    assert_eq!(post(r#"{"data_type": 1}"#).0, 404, "unknown agent");
    for (body, field) in [
        ("not json", "body"),
        ("[1]", "body"),
        (r#"{"object_name": "x"}"#, "data_type"),
        (r#"{"data_type": -1}"#, "data_type"),
        (r#"{"data_type": 5000000000}"#, "data_type"),
        (r#"{"data_type": 1, "payload": 7}"#, "payload"),
        (r#"{"data_type": 1, "payload_base64": "***"}"#, "payload_base64"),
        (r#"{"data_type": 1, "object_name": 3}"#, "object_name"),
    ] {
        let (s, b) = post(body);
        assert_eq!((s, b["field"].as_str()), (400, Some(field)), "{body}: {b}");
    }
    let (s, b) = http(api, "PUT", "/configs/agent", Some(KEY), Some(r#"{"payload": "x"}"#));
    assert_eq!((s, json(&b)["field"].as_str()), (400, Some("version")));
    let (s, m) = http(api, "GET", "/metrics", Some(KEY), None);
    assert_eq!(s, 200);
    assert!(m.contains("# TYPE edge_collector_records_stored_total counter"));
}

#[test]
fn registry_states_configs_and_tasks_across_a_reconnect() {
    let dir = TempDir::new("api-tasks");
    let (col, api) = start(&dir);
    // A config set before the agent ever connects reaches it on connect.
    let (s, _) = http(api, "PUT", "/configs/sampling", Some(KEY), Some(r#"{"version": "v7", "payload": "{\"every_ms\":50}"}"#));
    assert_eq!(s, 200);

    // A real agent with a plugin; it stays until it got one task.
    let spec = AgentSpec { wait_tasks: 1, plugin: true, deadline: Duration::from_secs(20), ..AgentSpec::new("dev-1", 20) };
    let addr = col.agents;
    let s1 = spec.clone();
    let agent = std::thread::spawn(move || run_agent(s1, addr));
    assert_eq!(wait_for(Duration::from_secs(10), || status_of(api, "dev-1").filter(|s| s == "online")).as_deref(), Some("online"));
    let (s, b) = http(api, "POST", "/agents/dev-1/tasks", Some(KEY), Some(r#"{"object_name": "scanner", "data_type": 6001, "payload": "/var/log"}"#));
    assert_eq!(s, 201, "{b}");
    let token = json(&b)["token"].as_str().unwrap().to_string();
    let report = agent.join().unwrap();
    assert!(report.drained);
    assert_eq!(report.tasks, vec![(token.clone(), "/var/log".to_string())]);
    assert!(report.configs.contains(&("sampling".into(), "v7".into())), "config on connect: {:?}", report.configs);
    let done = wait_for(Duration::from_secs(5), || {
        let (_, t) = get(api, &format!("/tasks/{token}"));
        (t["state"] == "done").then_some(t)
    })
    .expect("the task's result arrives");
    assert_eq!(done["result"], serde_json::json!({"status": 0, "message": "done:/var/log"}));

    // The snapshot: identity, heartbeat, plugins; offline after the close.
    let a = wait_for(Duration::from_secs(5), || {
        let (_, a) = get(api, "/agents/dev-1");
        (a["status"] == "offline").then_some(a)
    })
    .expect("offline after disconnect");
    assert_eq!(a["hostname"], "test-host");
    assert_eq!(a["addresses"], serde_json::json!(["127.0.0.1"]));
    assert!(a["last_heartbeat"]["lib"]["pushed"].as_u64().is_some(), "{a}");
    assert_eq!(a["plugins"][0]["name"], "scanner");
    assert_eq!(a["plugins"][0]["status"], "running");

    // A task for an offline agent waits, queued, and goes out on connect.
    let (s, b) = http(api, "POST", "/agents/dev-1/tasks", Some(KEY), Some(r#"{"data_type": 6002, "payload_base64": "AAEC"}"#));
    assert_eq!(s, 201);
    let t2 = json(&b)["token"].as_str().unwrap().to_string();
    assert_eq!(get(api, &format!("/tasks/{t2}")).1["state"], "queued");
    // A raw client as dev-1 takes the task and drops the connection
    // without answering: the task is resent on the next connect.
    for round in 1..=2 {
        let mut c = Raw::connect(col.agents);
        c.send(&Message::Hello(hello("dev-1", b"", 0, 0)));
        let mut got_task = false;
        for _ in 0..6 {
            match c.recv(Duration::from_secs(3)) {
                Got::Task { token, payload, data_type, .. } if token == t2 => {
                    assert_eq!((payload.as_slice(), data_type), (&[0u8, 1, 2][..], 6002));
                    got_task = true;
                    break;
                }
                Got::Accept { .. } | Got::Config { .. } | Got::Task { .. } => continue,
                g => panic!("round {round}: {g:?}"),
            }
        }
        assert!(got_task, "round {round}: the unanswered task was sent");
        if round == 2 {
            // Answered as a bare TaskResult frame this time.
            c.send(&Message::TaskResult(TaskResult { token: t2.as_str().into(), status: 1, message: "nope".into() }));
            let t = wait_for(Duration::from_secs(5), || {
                let (_, t) = get(api, &format!("/tasks/{t2}"));
                (t["state"] == "done").then_some(t)
            })
            .expect("bare result stored");
            assert_eq!(t["result"]["status"], 1);
            assert!(t["sends"].as_u64().unwrap() >= 2, "{t}");
        }
    }

    // Stale: online but silent for 2 heartbeat intervals of 1 s.
    let mut quiet = Raw::connect(col.agents);
    quiet.send(&Message::Hello(hello("quiet", b"", 0, 0)));
    assert!(matches!(quiet.recv_skipping(Duration::from_secs(3)), Got::Accept { .. }));
    assert_eq!(wait_for(Duration::from_secs(3), || status_of(api, "quiet")).as_deref(), Some("online"));
    assert_eq!(wait_for(Duration::from_secs(6), || status_of(api, "quiet").filter(|s| s == "stale")).as_deref(), Some("stale"));
    let (_, all) = get(api, "/agents");
    assert_eq!(all["agents"].as_array().unwrap().len(), 2);
}
