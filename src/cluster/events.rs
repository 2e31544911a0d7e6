//! Kubernetes Events for denials and warnings, on the workload that was reviewed, so
//! `kubectl describe` and `kubectl get events` show why signet said no.
//!
//! Events are sent in the background: admission never waits for them, and a failure to
//! record one is logged, never a reason to change a decision.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::Api;
use kube::api::PostParams;

/// Longest Event message; the API server rejects much longer ones.
const MAX_MESSAGE: usize = 1024;

/// The object an Event is about.
#[derive(Debug, Clone, Default)]
pub struct Involved {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: Option<String>,
}

#[derive(Clone)]
pub struct EventRecorder {
    client: kube::Client,
}

impl EventRecorder {
    pub fn new(client: kube::Client) -> Self {
        EventRecorder { client }
    }

    /// Records a `Warning` Event with `reason` on `involved`, in the background.
    pub fn record(&self, involved: Involved, reason: &'static str, message: String) {
        if involved.namespace.is_empty() {
            return;
        }
        let api: Api<Event> = Api::namespaced(self.client.clone(), &involved.namespace);
        let event = build_event(&involved, reason, message);
        tokio::spawn(async move {
            if let Err(e) = api.create(&PostParams::default(), &event).await {
                tracing::warn!(error = %e, kind = %involved.kind, name = %involved.name, "cannot record Event");
            }
        });
    }
}

fn build_event(involved: &Involved, reason: &str, message: String) -> Event {
    let now = k8s_openapi::jiff::Timestamp::now();
    let name = if involved.name.is_empty() {
        "pod"
    } else {
        involved.name.as_str()
    };
    let message = truncate(message, MAX_MESSAGE);
    Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}.signet.")),
            namespace: Some(involved.namespace.clone()),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some(involved.api_version.clone()),
            kind: Some(involved.kind.clone()),
            namespace: Some(involved.namespace.clone()),
            name: Some(involved.name.clone()),
            uid: involved.uid.clone(),
            ..ObjectReference::default()
        },
        reason: Some(reason.to_string()),
        message: Some(message),
        type_: Some("Warning".to_string()),
        source: Some(EventSource {
            component: Some("signet".to_string()),
            host: None,
        }),
        reporting_component: Some("signet".to_string()),
        reporting_instance: Some(std::env::var("HOSTNAME").unwrap_or_else(|_| "signet".to_string())),
        action: Some("Admission".to_string()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        count: Some(1),
        ..Event::default()
    }
}

fn truncate(mut message: String, limit: usize) -> String {
    if message.len() > limit {
        let mut cut = limit.saturating_sub(3);
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push_str("...");
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let message = "é".repeat(1000);
        let cut = truncate(message, MAX_MESSAGE);
        assert!(cut.len() <= MAX_MESSAGE && cut.ends_with("..."));
        assert_eq!(truncate("short".into(), 10), "short");
    }
}
