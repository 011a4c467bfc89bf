use super::*;
use crate::store::Rejection;
use std::time::UNIX_EPOCH;

fn key(name: &str) -> Subject {
    Subject::Config(ObjectKey { namespace: "ns".into(), name: name.into() })
}

fn accepted() -> Status {
    Status::Accepted { digest: "sha256:aa".into() }
}

fn rejected(reason: &'static str) -> Status {
    Status::Rejected(Rejection::new(reason, "why"))
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn accepted_objects_are_ready_and_not_stalled() {
    let c = Conditions::of(&accepted());
    assert!(c.ready && !c.stalled);
    assert_eq!(c.reason, "Accepted");
    let patch = c.patch(3, None, at(0));
    let conditions = patch["status"]["conditions"].as_array().unwrap();
    assert_eq!(conditions[0]["type"], "Ready");
    assert_eq!(conditions[0]["status"], "True");
    assert_eq!(conditions[0]["observedGeneration"], 3);
    assert_eq!(conditions[1]["type"], "Stalled");
    assert_eq!(conditions[1]["status"], "False");
    assert_eq!(patch["status"]["observedGeneration"], 3);
    assert_eq!(conditions[0]["lastTransitionTime"], "1970-01-01T00:00:00Z");
}

#[test]
fn refusals_the_object_cannot_outgrow_are_stalled_the_others_are_not() {
    for (reason, word) in [
        ("signature", "SignatureInvalid"),
        ("untrusted-key", "UntrustedKey"),
        ("digest", "DigestMismatch"),
        ("parse", "Malformed"),
        ("metadata", "MetadataMismatch"),
    ] {
        let c = Conditions::of(&rejected(reason));
        assert!(!c.ready && c.stalled, "{reason}");
        assert_eq!(c.reason, word);
        assert!(c.message.contains("last good"), "{}", c.message);
    }
    for (reason, word) in
        [("no-bundle", "NoBundle"), ("not-in-bundle", "NotInBundle"), ("bundle-mismatch", "BundleMismatch")]
    {
        let c = Conditions::of(&rejected(reason));
        assert!(!c.ready && !c.stalled, "{reason} can heal when the rest of the commit arrives");
        assert_eq!(c.reason, word);
    }
}

#[test]
fn written_conditions_read_back_equal() {
    let c = Conditions::of(&rejected("signature"));
    let patch = c.patch(7, None, at(10));
    let (read, generation) = Conditions::observed(Some(&patch["status"])).unwrap();
    assert_eq!(read, c);
    assert_eq!(generation, 7);
    assert_eq!(Conditions::observed(None), None);
    assert_eq!(Conditions::observed(Some(&json!({"conditions": [{"type": "Ready"}]}))), None);
}

#[test]
fn transition_time_moves_only_when_the_status_flips() {
    let first = Conditions::of(&rejected("signature")).patch(1, None, at(10));
    // Still refused, another reason: Ready stays False, its time stays.
    let again = Conditions::of(&rejected("digest")).patch(2, Some(&first["status"]), at(20));
    assert_eq!(again["status"]["conditions"][0]["lastTransitionTime"], "1970-01-01T00:00:10Z");
    // Accepted: both conditions flip.
    let healed = Conditions::of(&accepted()).patch(3, Some(&again["status"]), at(30));
    assert_eq!(healed["status"]["conditions"][0]["lastTransitionTime"], "1970-01-01T00:00:30Z");
    assert_eq!(healed["status"]["conditions"][1]["lastTransitionTime"], "1970-01-01T00:00:30Z");
}

#[test]
fn plan_patches_only_what_differs() {
    let desired: BTreeMap<Subject, Status> =
        [(key("a"), accepted()), (key("b"), rejected("signature")), (key("missing"), rejected("missing"))]
            .into_iter()
            .collect();
    let a_done = Conditions::of(&accepted()).patch(1, None, at(0))["status"].clone();
    let observed: BTreeMap<Subject, Observed> = [
        (key("a"), Observed { generation: 1, status: Some(a_done.clone()) }),
        (key("b"), Observed { generation: 4, status: None }),
        (key("not-decided"), Observed { generation: 1, status: None }),
    ]
    .into_iter()
    .collect();
    let plan = plan(&desired, &observed, at(5));
    assert_eq!(plan.len(), 1, "{plan:?}");
    assert_eq!(plan[0].0, key("b"));
    assert_eq!(plan[0].1["status"]["observedGeneration"], 4);
    // A new generation of an unchanged verdict is still recorded.
    let newer: BTreeMap<Subject, Observed> =
        [(key("a"), Observed { generation: 2, status: Some(a_done) })].into_iter().collect();
    assert_eq!(super::plan(&desired, &newer, at(5)).len(), 1);
}
