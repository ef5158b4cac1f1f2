//! The outbox on real PostgreSQL and SQLite: a redelivered source is taken
//! once, a send whose sender died is retried once its lease runs out (at
//! most one duplicate, never a loss), an acknowledgement suppresses what was
//! not yet sent and stops escalation, and escalation advances exactly once.

use glucochain_notifier::outbox::{NewDelivery, Outbox, SnoozeRow, SourceRow};
use glucochain_store::Store;
use glucochain_testkit::PgTestDb;

fn source(id: &str, group: &str, next: Option<i64>) -> SourceRow {
    SourceRow {
        id: id.into(),
        source_kind: "alert".into(),
        patient: "p-test".into(),
        kind: "low".into(),
        severity: 2,
        group_id: group.into(),
        episode_id: format!("e-{id}"),
        payload: vec![1, 2, 3],
        received_ms: 1_000,
        step: 0,
        next_escalation_ms: next,
        acked_ms: None,
        acked_by: None,
        ack_via: None,
        resolved_ms: None,
        traceparent: Some(format!("00-{:0>32}-00f067aa0ba902b7-01", id.len())),
    }
}

fn email(step: u32, due: i64) -> NewDelivery {
    NewDelivery { contact: "c1".into(), channel: "email", address: "a@example.org".into(), step, due_ms: due }
}

async fn exercise(store: Store) {
    let ob = Outbox::new(store);
    let s = source("a-1", "a-1", Some(61_000));
    assert!(ob.take(&s, &[email(0, 1_000)], true, 1_000).await.unwrap());
    assert!(!ob.take(&s, &[email(0, 1_000)], true, 1_000).await.unwrap(), "a redelivered alert is taken once");
    assert_eq!(ob.depth().await.unwrap(), 1);
    assert!(ob.has_source("a-1").await.unwrap());
    assert_eq!(ob.source("a-1").await.unwrap(), Some(s.clone()), "the source reads back as written, trace included");
    let g = ob.open_group("p-test").await.unwrap().unwrap();
    assert_eq!((g.group_id.as_str(), g.severity, g.step), ("a-1", 2, 0));

    // A sender claims it and dies before recording the send.
    let due = ob.due_deliveries(1_000, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    let id = due[0].id.clone();
    assert!(ob.claim(&id, 1_000, 31_000).await.unwrap());
    assert!(!ob.claim(&id, 2_000, 32_000).await.unwrap(), "held by the lease");
    assert!(ob.due_deliveries(20_000, 10).await.unwrap().is_empty());
    // After the lease it is due again: resent once, then recorded.
    let again = ob.due_deliveries(31_001, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert!(ob.claim(&id, 31_001, 61_001).await.unwrap());
    ob.sent(&id, 31_500).await.unwrap();
    let d = ob.delivery(&id).await.unwrap().unwrap();
    assert_eq!((d.state.as_str(), d.attempts, d.sent_ms), ("sent", 2, Some(31_500)));
    assert!(ob.due_deliveries(100_000, 10).await.unwrap().is_empty());

    // A temporary failure comes back at its retry time; a give-up stays failed.
    let s2 = source("a-2", "a-1", None);
    let d2 = NewDelivery { contact: "c2".into(), channel: "sms", address: "+15550002".into(), step: 0, due_ms: 40_000 };
    assert!(ob.take(&s2, std::slice::from_ref(&d2), false, 40_000).await.unwrap());
    let id2 = d2.id("a-2");
    assert!(ob.claim(&id2, 40_000, 70_000).await.unwrap());
    ob.failed(&id2, "temporary: gateway 503", Some(45_000)).await.unwrap();
    assert!(ob.due_deliveries(44_999, 10).await.unwrap().is_empty());
    assert_eq!(ob.due_deliveries(45_000, 10).await.unwrap()[0].id, id2);
    let code = ob.delivery(&id2).await.unwrap().unwrap().ack_code;
    assert_eq!(code.len(), 8, "issue 19, M5: longer reply codes");
    assert!(ob.by_sms_code("+15550002", &code, 0).await.unwrap().is_none(), "a code not sent yet acknowledges nothing");
    assert!(ob.claim(&id2, 45_000, 75_000).await.unwrap());
    ob.sent(&id2, 46_000).await.unwrap();
    assert_eq!(ob.by_sms_code("+15550002", &code, 46_000).await.unwrap().unwrap().id, id2);
    assert!(ob.by_sms_code("+15550009", &code, 0).await.unwrap().is_none(), "the code works from that number only");
    assert!(
        ob.by_sms_code("+15550002", &code, 46_001).await.unwrap().is_none(),
        "issue 19, M5: only within the window"
    );

    // A channel working again: its deliveries waiting out a backoff from the
    // outage are due at once; one never tried (due later on purpose) and
    // another channel's failed one keep their times.
    let s9 = source("a-9", "a-9", None);
    let failed_sms =
        NewDelivery { contact: "c2".into(), channel: "sms", address: "+15550002".into(), step: 0, due_ms: 47_000 };
    let later_sms =
        NewDelivery { contact: "c3".into(), channel: "sms", address: "+15550003".into(), step: 0, due_ms: 90_000 };
    let failed_mail = email(0, 47_000);
    assert!(ob.take(&s9, &[failed_sms.clone(), later_sms.clone(), failed_mail.clone()], false, 47_000).await.unwrap());
    for d in [&failed_sms, &failed_mail] {
        assert!(ob.claim(&d.id("a-9"), 47_000, 77_000).await.unwrap());
        ob.failed(&d.id("a-9"), "temporary: down", Some(600_000)).await.unwrap();
    }
    assert_eq!(ob.retry_channel_now("sms", 50_000).await.unwrap(), 1);
    let due: Vec<String> = ob.due_deliveries(50_000, 10).await.unwrap().into_iter().map(|d| d.id).collect();
    assert_eq!(due, vec![failed_sms.id("a-9")], "only the failed SMS is due now");
    assert_eq!(ob.delivery(&later_sms.id("a-9")).await.unwrap().unwrap().due_ms, 90_000);
    assert!(ob.claim(&failed_sms.id("a-9"), 50_000, 80_000).await.unwrap());
    ob.sent(&failed_sms.id("a-9"), 50_001).await.unwrap();
    assert!(ob.ack_group("a-9", "c2", "link", 50_002).await.unwrap());
    assert_eq!(ob.delivery(&later_sms.id("a-9")).await.unwrap().unwrap().state, "suppressed");

    // Escalation advances once even if two passes race.
    let due_esc = ob.due_escalations(61_000).await.unwrap();
    assert_eq!(due_esc.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), vec!["a-1"]);
    let next =
        NewDelivery { contact: "c2".into(), channel: "sms", address: "+15550002".into(), step: 1, due_ms: 61_000 };
    assert!(ob.advance("a-1", 0, 1, Some(121_000), std::slice::from_ref(&next), 61_000).await.unwrap());
    assert!(!ob.advance("a-1", 0, 1, Some(121_000), std::slice::from_ref(&next), 61_000).await.unwrap());

    // The acknowledgement: the group stops escalating, unsent deliveries are suppressed.
    assert!(ob.ack_group("a-1", "c1", "link", 62_000).await.unwrap());
    assert!(!ob.ack_group("a-1", "c2", "sms", 63_000).await.unwrap(), "the first ack counts");
    assert!(ob.due_escalations(1_000_000).await.unwrap().is_empty());
    assert!(ob.due_deliveries(1_000_000, 10).await.unwrap().is_empty());
    assert_eq!(ob.delivery(&next.id("a-1")).await.unwrap().unwrap().state, "suppressed");
    let s1 = ob.source("a-1").await.unwrap().unwrap();
    assert_eq!((s1.acked_by.as_deref(), s1.ack_via.as_deref()), (Some("c1"), Some("link")));
    assert!(ob.open_group("p-test").await.unwrap().is_none());
    // A resolved episode stops escalating and its unsent deliveries are dropped.
    let s3 = source("a-3", "a-3", Some(200_000));
    let d3 = email(0, 150_000);
    assert!(ob.take(&s3, std::slice::from_ref(&d3), true, 100_000).await.unwrap());
    assert_eq!(ob.resolve_episode("p-test", "e-a-3", 120_000).await.unwrap(), 1);
    assert_eq!(ob.resolve_episode("p-test", "e-a-3", 121_000).await.unwrap(), 0, "once");
    assert!(ob.due_escalations(1_000_000).await.unwrap().is_empty());
    assert_eq!(ob.delivery(&d3.id("a-3")).await.unwrap().unwrap().state, "suppressed");
    assert_eq!(ob.source("a-3").await.unwrap().unwrap().resolved_ms, Some(120_000));
    assert!(ob.use_link(&id, 70_000).await.unwrap());
    assert!(!ob.use_link(&id, 71_000).await.unwrap(), "a link is used once");

    // Issue 20: a snooze is in force until its end, for its patient only,
    // and lets the group's escalation move on at once.
    let s4 = source("a-4", "a-4", Some(900_000));
    assert!(ob.take(&s4, &[email(0, 300_000)], true, 300_000).await.unwrap());
    let z = SnoozeRow {
        patient: "p-test".into(),
        contact: "c1".into(),
        kind: "low".into(),
        until_ms: 300_000 + 30 * 60_000,
        created_ms: 300_000,
        via: "link".into(),
    };
    ob.snooze(&z, "a-4").await.unwrap();
    assert_eq!(ob.active_snoozes("p-test", 300_001).await.unwrap(), vec![z.clone()]);
    assert!(ob.active_snoozes("p-other", 300_001).await.unwrap().is_empty(), "another patient's alerts are not held");
    assert!(ob.active_snoozes("p-test", z.until_ms).await.unwrap().is_empty(), "it ends at its time");
    assert_eq!(ob.source("a-4").await.unwrap().unwrap().next_escalation_ms, Some(300_000), "escalation moves on now");
    assert_eq!(ob.due_escalations(300_000).await.unwrap().iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["a-4"]);
}

#[tokio::test]
async fn outbox_on_postgres() {
    let db = PgTestDb::create().await.unwrap();
    exercise(Store::connect(db.url()).await.unwrap()).await;
}

#[tokio::test]
async fn outbox_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("n.db").display());
    exercise(Store::connect(&url).await.unwrap()).await;
}
