//! The `Chats` part of the contract: threads and messages, each within its session.

use super::*;

pub async fn threads_and_messages_are_scoped(store: Arc<dyn TestStore>) {
    let (a, _) = claimed(&*store).await;
    let (b, _) = claimed(&*store).await;
    let t = thread("A's thread", 1_000);
    store.create_thread(&a, &t).await.unwrap();
    let m = message(&t, Role::User, "A's secret", 2_000);
    assert!(store.put_message(&a, &m).await.unwrap());

    assert_eq!(
        store.list_threads(&a).await.unwrap(),
        vec![Thread {
            updated_ms: 2_000,
            ..t.clone()
        }]
    );
    let (got, msgs) = store.get_thread(&a, &t.id).await.unwrap().unwrap();
    assert_eq!(got.updated_ms, 2_000, "appending moves updated_ms");
    assert_eq!(msgs, vec![m.clone()]);

    // B knows both ids and can touch neither.
    assert!(store.list_threads(&b).await.unwrap().is_empty());
    assert_eq!(store.get_thread(&b, &t.id).await.unwrap(), None);
    assert_eq!(store.get_message(&b, &m.id).await.unwrap(), None);
    assert!(
        !store
            .update_thread(
                &b,
                &Thread {
                    title: "hijacked".into(),
                    ..t.clone()
                }
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .put_message(&b, &message(&t, Role::User, "injected", 3_000))
            .await
            .unwrap()
    );
    let mut overwrite = m.clone();
    overwrite.content = "overwritten".into();
    assert!(!store.put_message(&b, &overwrite).await.unwrap());
    assert_eq!(store.truncate_after(&b, &t.id, None).await.unwrap(), 0);
    assert!(!store.delete_thread(&b, &t.id).await.unwrap());

    let (_, msgs) = store.get_thread(&a, &t.id).await.unwrap().unwrap();
    assert_eq!(msgs, vec![m.clone()], "A's thread is untouched");
    assert_eq!(store.get_message(&a, &m.id).await.unwrap(), Some(m));
}

/// A reply's steps and action buttons (with their payloads) go in and come out with it, as
/// the reply grows and when it ends, and another session reaches them no more than it
/// reaches the text.
pub async fn steps_and_actions_are_kept_with_their_message(store: Arc<dyn TestStore>) {
    let (s, _) = claimed(&*store).await;
    let (other, _) = claimed(&*store).await;
    let t = thread("t", 1);
    store.create_thread(&s, &t).await.unwrap();
    let tool = Step {
        id: StepId::random(),
        parent: None,
        kind: StepKind::Tool,
        name: "calculator".into(),
        input: r#"{"expression":"2+2"}"#.into(),
        output: String::new(),
        status: StepStatus::Running,
        started_ms: 10,
        ended_ms: None,
    };
    let mut reply = Message {
        role: Role::Assistant,
        status: MessageStatus::Streaming,
        steps: vec![tool.clone()],
        ..message(&t, Role::Assistant, "", 2)
    };
    assert!(store.put_message(&s, &reply).await.unwrap());
    assert_eq!(
        store.get_message(&s, &reply.id).await.unwrap(),
        Some(reply.clone())
    );

    // It ends, a nested step with text no store should mangle beside it.
    reply.steps[0].status = StepStatus::Done;
    reply.steps[0].output = "4".into();
    reply.steps[0].ended_ms = Some(12);
    reply.steps.push(Step {
        id: StepId::random(),
        parent: Some(tool.id),
        kind: StepKind::Reasoning,
        name: "why \"4\"".into(),
        input: "line one\nline two, ünï \u{e000} <b>&amp;</b>".into(),
        output: "'; DROP TABLE messages; --".into(),
        status: StepStatus::Failed,
        started_ms: 11,
        ended_ms: Some(11),
    });
    reply.content = "It is 4.".into();
    reply.status = MessageStatus::Done;
    reply.actions = vec![
        Action {
            id: ActionId::random(),
            name: "pick".into(),
            label: "Again ✓".into(),
            payload: r#"{"colour":"red","n":[1,2.5,null],"q":"\"'<"}"#.into(),
        },
        Action {
            id: ActionId::random(),
            name: "pick".into(),
            label: "No payload".into(),
            payload: String::new(),
        },
    ];
    assert!(store.put_message(&s, &reply).await.unwrap());
    let (_, msgs) = store.get_thread(&s, &t.id).await.unwrap().unwrap();
    assert_eq!(msgs, vec![reply.clone()]);
    assert_eq!(
        tail_of(&*store, &s, &t.id, 1).await.messages,
        vec![reply.clone()]
    );

    // A message without steps reads back with none; one with files keeps them, in order.
    let user = message(&t, Role::User, "next", 3);
    assert!(store.put_message(&s, &user).await.unwrap());
    let with_files = Message {
        content: String::new(),
        attachments: vec![
            confide_core::model::Attachment {
                id: confide_core::model::FileId::random(),
                name: "plan \"v2\" ünï.md".into(),
                size: 14,
                mime: "text/markdown".into(),
            },
            confide_core::model::Attachment {
                id: confide_core::model::FileId::random(),
                name: "shot.png".into(),
                size: 20_000_000,
                mime: "image/png".into(),
            },
        ],
        ..message(&t, Role::User, "", 4)
    };
    assert!(store.put_message(&s, &with_files).await.unwrap());
    assert_eq!(
        store.get_message(&s, &with_files.id).await.unwrap(),
        Some(with_files.clone())
    );
    assert!(
        store
            .get_message(&s, &user.id)
            .await
            .unwrap()
            .unwrap()
            .attachments
            .is_empty()
    );
    assert!(
        store
            .get_message(&s, &user.id)
            .await
            .unwrap()
            .unwrap()
            .steps
            .is_empty()
    );

    assert_eq!(store.get_message(&other, &reply.id).await.unwrap(), None);
    let mut forged = reply.clone();
    forged.steps[0].output = "5".into();
    forged.actions[0].payload = r#"{"colour":"all of them"}"#.into();
    assert!(!store.put_message(&other, &forged).await.unwrap());
    assert_eq!(
        store.get_message(&s, &reply.id).await.unwrap(),
        Some(reply.clone())
    );

    // Clicked: the buttons go, the steps stay.
    reply.actions.clear();
    assert!(store.put_message(&s, &reply).await.unwrap());
    let read = store.get_message(&s, &reply.id).await.unwrap().unwrap();
    assert!(read.actions.is_empty());
    assert_eq!(read.steps.len(), 2);
}

pub async fn messages_keep_order_replace_and_truncate(store: Arc<dyn TestStore>) {
    let (s, _) = claimed(&*store).await;
    let t = thread("t", 1);
    store.create_thread(&s, &t).await.unwrap();
    let ms: Vec<Message> = (0..5)
        .map(|i| {
            message(
                &t,
                if i % 2 == 0 {
                    Role::User
                } else {
                    Role::Assistant
                },
                &format!("m{i}"),
                10,
            )
        })
        .collect();
    for m in &ms {
        assert!(store.put_message(&s, m).await.unwrap());
    }
    let mut edited = ms[2].clone();
    edited.content = "m2 edited".into();
    edited.status = MessageStatus::Stopped;
    assert!(store.put_message(&s, &edited).await.unwrap());
    let (_, got) = store.get_thread(&s, &t.id).await.unwrap().unwrap();
    assert_eq!(
        got.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(),
        ["m0", "m1", "m2 edited", "m3", "m4"]
    );
    assert_eq!(got[2].status, MessageStatus::Stopped);

    assert_eq!(
        store
            .truncate_after(&s, &t.id, Some(&ms[2].id))
            .await
            .unwrap(),
        2
    );
    let (_, got) = store.get_thread(&s, &t.id).await.unwrap().unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(store.get_message(&s, &ms[4].id).await.unwrap(), None);
    assert_eq!(store.truncate_after(&s, &t.id, None).await.unwrap(), 3);

    let mut renamed = t.clone();
    renamed.title = "renamed".into();
    assert!(store.update_thread(&s, &renamed).await.unwrap());
    assert_eq!(store.list_threads(&s).await.unwrap()[0].title, "renamed");
    assert!(store.delete_thread(&s, &t.id).await.unwrap());
    assert_eq!(store.get_thread(&s, &t.id).await.unwrap(), None);
    assert!(
        !store.put_message(&s, &ms[0]).await.unwrap(),
        "no messages without their thread"
    );
}

/// A reply's writer saves it as `streaming` while it grows; a Stop handled by another
/// instance marks it `stopped` in between. Whatever order those writes land in, the stop
/// stays: a message that is no longer streaming is never put back to streaming (that put
/// stores nothing and still answers true, and the messages beside it are stored).
pub async fn a_finished_message_never_streams_again(store: Arc<dyn TestStore>) {
    let (s, _) = claimed(&*store).await;
    let t = thread("t", 1);
    store.create_thread(&s, &t).await.unwrap();
    let mut reply = message(&t, Role::Assistant, "half", 10);
    reply.status = MessageStatus::Streaming;
    assert!(store.put_message(&s, &reply).await.unwrap());
    let mut stopped = reply.clone();
    stopped.status = MessageStatus::Stopped;
    assert!(store.put_message(&s, &stopped).await.unwrap());
    let mut late = reply.clone();
    late.content = "half and more".into();
    let next = message(&t, Role::User, "next", 11);
    assert!(
        store
            .put_messages(&s, &[late.clone(), next.clone()])
            .await
            .unwrap()
    );
    let got = store.get_message(&s, &reply.id).await.unwrap().unwrap();
    assert_eq!(
        (got.status, got.content.as_str()),
        (MessageStatus::Stopped, "half")
    );
    assert_eq!(store.get_message(&s, &next.id).await.unwrap(), Some(next));
    // From one finished state to another is an ordinary replacement.
    let mut done = late.clone();
    done.status = MessageStatus::Done;
    assert!(store.put_message(&s, &done).await.unwrap());
    let got = store.get_message(&s, &reply.id).await.unwrap().unwrap();
    assert_eq!(
        (got.status, got.content.as_str()),
        (MessageStatus::Done, "half and more")
    );
    let tail = store.thread_tail(&s, &t.id, 10).await.unwrap().unwrap();
    assert_eq!(tail.count, 2);
}

/// A replacement never appends: a rating or a reply's save that comes after an edit
/// dropped its message must not bring the message back at the thread's end.
pub async fn a_replacement_never_brings_back_a_dropped_message(store: Arc<dyn TestStore>) {
    let (s, _) = claimed(&*store).await;
    let (other, _) = claimed(&*store).await;
    let t = thread("t", 1);
    let u = thread("u", 1);
    store.create_thread(&s, &t).await.unwrap();
    store.create_thread(&s, &u).await.unwrap();
    let question = message(&t, Role::User, "question", 10);
    let mut reply = message(&t, Role::Assistant, "", 11);
    reply.status = MessageStatus::Streaming;
    assert!(
        store
            .put_messages(&s, &[question.clone(), reply.clone()])
            .await
            .unwrap()
    );
    // In place, streaming to streaming and then to done.
    let mut grown = reply.clone();
    grown.content = "half".into();
    assert!(store.replace_message(&s, &grown).await.unwrap());
    let mut done = grown.clone();
    done.content = "half and more".into();
    done.status = MessageStatus::Done;
    assert!(store.replace_message(&s, &done).await.unwrap());
    assert_eq!(
        store.get_message(&s, &reply.id).await.unwrap(),
        Some(done.clone())
    );
    // A finished message is not put back to streaming, and the call still counts as done.
    assert!(store.replace_message(&s, &grown).await.unwrap());
    assert_eq!(
        store.get_message(&s, &reply.id).await.unwrap(),
        Some(done.clone())
    );

    // A new message, one of another thread of the session, and one of another session's
    // thread are refused, and nothing is written.
    let new = message(&t, Role::User, "never sent", 12);
    assert!(!store.replace_message(&s, &new).await.unwrap());
    let mut moved = question.clone();
    moved.thread_id = u.id;
    assert!(!store.replace_message(&s, &moved).await.unwrap());
    assert!(!store.replace_message(&other, &question).await.unwrap());

    // Dropped by a truncation: a late rating of the reply finds nothing.
    assert_eq!(
        store
            .truncate_after(&s, &t.id, Some(&question.id))
            .await
            .unwrap(),
        1
    );
    let mut rated = done.clone();
    rated.content = "late".into();
    assert!(!store.replace_message(&s, &rated).await.unwrap());
    assert_eq!(store.get_message(&s, &reply.id).await.unwrap(), None);
    let (_, kept) = store.get_thread(&s, &t.id).await.unwrap().unwrap();
    assert_eq!(kept, vec![question]);
    let tail = store.thread_tail(&s, &t.id, 10).await.unwrap().unwrap();
    assert_eq!(tail.count, 1);
    assert!(
        store
            .get_thread(&s, &u.id)
            .await
            .unwrap()
            .unwrap()
            .1
            .is_empty()
    );
    assert!(store.get_thread(&other, &t.id).await.unwrap().is_none());
}

pub async fn a_turn_is_put_in_one_call(store: Arc<dyn TestStore>) {
    let (a, _) = claimed(&*store).await;
    let (b, _) = claimed(&*store).await;
    let t = thread("t", 1);
    store.create_thread(&a, &t).await.unwrap();
    let first = message(&t, Role::User, "question", 2_000);
    assert!(store.put_message(&a, &first).await.unwrap());

    let user = message(&t, Role::User, "next", 3_000);
    let mut reply = message(&t, Role::Assistant, "", 3_001);
    reply.status = MessageStatus::Streaming;
    assert!(
        store
            .put_messages(&a, &[user.clone(), reply.clone()])
            .await
            .unwrap()
    );
    let (got_t, got) = store.get_thread(&a, &t.id).await.unwrap().unwrap();
    assert_eq!(
        got.iter().map(|m| m.id).collect::<Vec<_>>(),
        [first.id, user.id, reply.id]
    );
    assert_eq!(got[2].status, MessageStatus::Streaming);
    assert_eq!(got_t.updated_ms, 3_001, "appending moves the thread's time");

    // A message already there is replaced in place, next to a new one.
    let mut done = reply.clone();
    done.content = "answer".into();
    done.status = MessageStatus::Done;
    let after = message(&t, Role::User, "more", 4_000);
    assert!(
        store
            .put_messages(&a, &[done.clone(), after.clone()])
            .await
            .unwrap()
    );
    let (_, got) = store.get_thread(&a, &t.id).await.unwrap().unwrap();
    assert_eq!(
        got.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(),
        ["question", "next", "answer", "more"]
    );

    // Another session's thread: refused, and nothing lands on either side.
    let intruder = [
        message(&t, Role::User, "injected", 5_000),
        message(&t, Role::Assistant, "injected", 5_001),
    ];
    assert!(!store.put_messages(&b, &intruder).await.unwrap());
    assert!(store.get_thread(&b, &t.id).await.unwrap().is_none());
    assert_eq!(store.get_message(&b, &intruder[0].id).await.unwrap(), None);
    let (_, got) = store.get_thread(&a, &t.id).await.unwrap().unwrap();
    assert_eq!(got.len(), 4, "the owner's thread is untouched");

    // A missing thread for the first message stores nothing at all.
    let gone = thread("gone", 1);
    let mixed = [
        message(&gone, Role::User, "lost", 6_000),
        message(&t, Role::User, "kept?", 6_001),
    ];
    assert!(!store.put_messages(&a, &mixed).await.unwrap());
    assert_eq!(store.get_message(&a, &mixed[1].id).await.unwrap(), None);

    // At the limit a turn is refused whole: no half of it lands.
    let full = thread("full", 1);
    store.create_thread(&a, &full).await.unwrap();
    let fill: Vec<Message> = (0..MAX_MESSAGES - 1)
        .map(|i| message(&full, Role::User, "f", i as i64))
        .collect();
    assert!(store.put_messages(&a, &fill).await.unwrap());
    let over = [
        message(&full, Role::User, "q", 9_000),
        message(&full, Role::Assistant, "", 9_001),
    ];
    assert_eq!(
        store.put_messages(&a, &over).await,
        Err(StoreError::TooManyMessages)
    );
    let (_, got) = store.get_thread(&a, &full.id).await.unwrap().unwrap();
    assert_eq!(got.len(), MAX_MESSAGES - 1);
    assert_eq!(store.get_message(&a, &over[0].id).await.unwrap(), None);

    // A gone session is an error, as for one message.
    assert!(store.delete(&a).await.unwrap());
    assert_eq!(
        store
            .put_messages(&a, &[message(&t, Role::User, "x", 7_000)])
            .await,
        Err(StoreError::NoSuchSession)
    );
}

/// A turn follows the end it read, or nothing of it is stored: two tabs that read the same
/// end (on two instances, where no lock is shared) cannot both append after it.
pub async fn a_turn_follows_only_the_end_it_read(store: Arc<dyn TestStore>) {
    let (a, _) = claimed(&*store).await;
    let (b, _) = claimed(&*store).await;
    let t = thread("t", 1);
    store.create_thread(&a, &t).await.unwrap();
    let turn = |q: &str, at: i64| {
        let mut reply = message(&t, Role::Assistant, "", at + 1);
        reply.status = MessageStatus::Streaming;
        [message(&t, Role::User, q, at), reply]
    };

    // An empty thread: only a turn that read it empty goes in.
    let first = turn("first", 10);
    let wrong = MessageId::random();
    assert_eq!(
        store.put_turn(&a, Some(&wrong), &first).await,
        Err(StoreError::Moved)
    );
    assert!(store.put_turn(&a, None, &first).await.unwrap());
    let second = turn("second", 20);
    assert_eq!(
        store.put_turn(&a, None, &second).await,
        Err(StoreError::Moved),
        "the thread is no longer empty"
    );
    assert_eq!(
        store.put_turn(&a, Some(&first[0].id), &second).await,
        Err(StoreError::Moved),
        "the end is the reply, not the question"
    );
    assert!(
        store
            .put_turn(&a, Some(&first[1].id), &second)
            .await
            .unwrap()
    );
    let (_, got) = store.get_thread(&a, &t.id).await.unwrap().unwrap();
    assert_eq!(contents(&got), ["first", "", "second", ""]);

    // Refused turns left nothing: not the question, not the count.
    assert_eq!(store.get_message(&a, &wrong).await.unwrap(), None);
    let tail = store.thread_tail(&a, &t.id, 10).await.unwrap().unwrap();
    assert_eq!(tail.count, 4);

    // After a truncation the end is the message kept last.
    store
        .truncate_after(&a, &t.id, Some(&first[0].id))
        .await
        .unwrap();
    let again = turn("again", 30);
    assert_eq!(
        store.put_turn(&a, Some(&second[1].id), &again).await,
        Err(StoreError::Moved),
        "a dropped message is no end"
    );
    let answer = [message(&t, Role::Assistant, "", 31)];
    assert!(
        store
            .put_turn(&a, Some(&first[0].id), &answer)
            .await
            .unwrap()
    );

    // Eight turns read from the same end at once: exactly one follows it.
    let end = answer[0].id;
    let turns: Vec<[Message; 2]> = (0..8).map(|i| turn("racing", 40 + i * 2)).collect();
    let results =
        futures::future::join_all(turns.iter().map(|ms| store.put_turn(&a, Some(&end), ms))).await;
    let won: Vec<usize> = (0..8).filter(|&i| results[i] == Ok(true)).collect();
    assert_eq!(won.len(), 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| *r == Ok(true) || *r == Err(StoreError::Moved)),
        "{results:?}"
    );
    let (_, got) = store.get_thread(&a, &t.id).await.unwrap().unwrap();
    assert_eq!(got.len(), 4);
    assert_eq!(got[2].id, turns[won[0]][0].id);

    // Another session's thread, or one that is gone, is not found whatever the end.
    assert!(
        !store
            .put_turn(&b, Some(&got[3].id), &turn("x", 60))
            .await
            .unwrap()
    );
    assert!(!store.put_turn(&b, None, &turn("x", 60)).await.unwrap());
    assert!(store.delete_thread(&a, &t.id).await.unwrap());
    assert!(
        !store
            .put_turn(&a, Some(&got[3].id), &turn("x", 60))
            .await
            .unwrap()
    );
    assert!(store.get_thread(&b, &t.id).await.unwrap().is_none());
}

pub async fn a_thread_tail_is_its_last_messages(store: Arc<dyn TestStore>) {
    let (a, _) = claimed(&*store).await;
    let (b, _) = claimed(&*store).await;
    let t = thread("t", 1);
    store.create_thread(&a, &t).await.unwrap();
    let empty = tail_of(&*store, &a, &t.id, 5).await;
    assert_eq!((empty.messages.len(), empty.count), (0, 0));

    let ms: Vec<Message> = (0..7)
        .map(|i| message(&t, Role::User, &format!("m{i}"), 10 + i))
        .collect();
    assert!(store.put_message(&a, &ms[0]).await.unwrap());
    assert!(store.put_messages(&a, &ms[1..3]).await.unwrap());
    assert!(store.put_messages(&a, &ms[3..]).await.unwrap());
    for last in [0, 1, 3, 6, 7, 8, 1_000, usize::MAX] {
        tail_of(&*store, &a, &t.id, last).await;
    }
    let tail = tail_of(&*store, &a, &t.id, 3).await;
    assert_eq!(contents(&tail.messages), ["m4", "m5", "m6"]);
    assert_eq!(tail.count, 7);
    assert_eq!(
        tail.thread.updated_ms, 16,
        "appends moved the thread's time"
    );

    // A replaced message shows in place, and the count stays.
    let mut streaming = ms[6].clone();
    streaming.content = "m6 edited".into();
    streaming.status = MessageStatus::Stopped;
    assert!(store.put_message(&a, &streaming).await.unwrap());
    let tail = tail_of(&*store, &a, &t.id, 2).await;
    assert_eq!(contents(&tail.messages), ["m5", "m6 edited"]);
    assert_eq!(tail.messages[1].status, MessageStatus::Stopped);
    assert_eq!(tail.count, 7);

    // Only the session's own threads; a gone session is an error.
    assert_eq!(store.thread_tail(&b, &t.id, 3).await.unwrap(), None);
    assert_eq!(
        store.thread_tail(&a, &ThreadId::random(), 3).await.unwrap(),
        None
    );
    assert!(store.delete(&a).await.unwrap());
    assert_eq!(
        store.thread_tail(&a, &t.id, 3).await,
        Err(StoreError::NoSuchSession)
    );
}

pub async fn the_message_count_follows_every_change(store: Arc<dyn TestStore>) {
    let (a, _) = claimed(&*store).await;
    let (b, _) = claimed(&*store).await;
    let t = thread("t", 1);
    store.create_thread(&a, &t).await.unwrap();
    let ms: Vec<Message> = (0..6)
        .map(|i| message(&t, Role::User, &format!("m{i}"), 10 + i))
        .collect();
    assert!(store.put_messages(&a, &ms).await.unwrap());
    assert_eq!(tail_of(&*store, &a, &t.id, 2).await.count, 6);

    // Refused writes change nothing: another session's, a missing thread in the same turn.
    assert!(
        !store
            .put_message(&b, &message(&t, Role::User, "x", 20))
            .await
            .unwrap()
    );
    let gone = thread("gone", 1);
    let mixed = [
        message(&t, Role::User, "kept?", 21),
        message(&gone, Role::User, "lost", 22),
    ];
    assert!(!store.put_messages(&a, &mixed).await.unwrap());
    assert_eq!(tail_of(&*store, &a, &t.id, 2).await.count, 6);

    assert_eq!(
        store
            .truncate_after(&a, &t.id, Some(&ms[3].id))
            .await
            .unwrap(),
        2
    );
    assert_eq!(tail_of(&*store, &a, &t.id, 2).await.count, 4);
    assert_eq!(
        store
            .truncate_after(&a, &t.id, Some(&MessageId::random()))
            .await
            .unwrap(),
        0
    );
    assert_eq!(tail_of(&*store, &a, &t.id, 2).await.count, 4);
    assert!(
        store.put_message(&a, &ms[4]).await.unwrap(),
        "appended again"
    );
    assert_eq!(
        contents(&tail_of(&*store, &a, &t.id, 2).await.messages),
        ["m3", "m4"]
    );
    assert_eq!(store.truncate_after(&a, &t.id, None).await.unwrap(), 5);
    assert_eq!(tail_of(&*store, &a, &t.id, 2).await.count, 0);

    // At the limit: a refused turn leaves the count, one message fills the thread, and
    // room made by a truncation is room again.
    let fill: Vec<Message> = (0..MAX_MESSAGES - 1)
        .map(|i| message(&t, Role::User, "f", 100 + i as i64))
        .collect();
    assert!(store.put_messages(&a, &fill).await.unwrap());
    let turn = [
        message(&t, Role::User, "q", 9_000),
        message(&t, Role::Assistant, "", 9_001),
    ];
    assert_eq!(
        store.put_messages(&a, &turn).await,
        Err(StoreError::TooManyMessages)
    );
    assert_eq!(tail_of(&*store, &a, &t.id, 1).await.count, MAX_MESSAGES - 1);
    assert!(store.put_message(&a, &turn[0]).await.unwrap());
    assert_eq!(tail_of(&*store, &a, &t.id, 1).await.count, MAX_MESSAGES);
    assert_eq!(
        store.put_message(&a, &turn[1]).await,
        Err(StoreError::TooManyMessages)
    );
    let mut replaced = turn[0].clone();
    replaced.content = "q again".into();
    assert!(
        store.put_message(&a, &replaced).await.unwrap(),
        "a full thread still takes replacements"
    );
    let tail = tail_of(&*store, &a, &t.id, 1).await;
    assert_eq!(
        (tail.count, contents(&tail.messages)),
        (MAX_MESSAGES, vec!["q again"])
    );
    assert_eq!(
        store
            .truncate_after(&a, &t.id, Some(&fill[MAX_MESSAGES - 3].id))
            .await
            .unwrap(),
        2
    );
    assert!(store.put_messages(&a, &turn[..]).await.unwrap());
    assert_eq!(tail_of(&*store, &a, &t.id, 3).await.count, MAX_MESSAGES);

    // A deleted thread, or session, takes its count along.
    assert!(store.delete_thread(&a, &t.id).await.unwrap());
    assert_eq!(store.thread_tail(&a, &t.id, 1).await.unwrap(), None);
    let t2 = thread("t2", 2);
    store.create_thread(&a, &t2).await.unwrap();
    assert!(
        store
            .put_message(&a, &message(&t2, Role::User, "x", 3))
            .await
            .unwrap()
    );
    assert_eq!(tail_of(&*store, &a, &t2.id, 1).await.count, 1);
    assert!(store.delete(&a).await.unwrap());
    assert_eq!(
        store.thread_tail(&a, &t2.id, 1).await,
        Err(StoreError::NoSuchSession)
    );
}

/// One fixed run of appends, replacements and truncations, and what `thread_tail` showed
/// after each step (count, contents of the last three): every backend must show the same.
pub async fn tail_observations(store: Arc<dyn TestStore>) -> Vec<(usize, Vec<String>)> {
    let (s, _) = claimed(&*store).await;
    let t = thread("t", 1);
    store.create_thread(&s, &t).await.unwrap();
    let mut seen = Vec::new();
    let mut ms: Vec<Message> = Vec::new();
    for step in 0..40usize {
        match step % 7 {
            3 if ms.len() > 2 => {
                let keep = ms[ms.len() / 2].id;
                store.truncate_after(&s, &t.id, Some(&keep)).await.unwrap();
                let at = ms.iter().position(|m| m.id == keep).unwrap();
                ms.truncate(at + 1);
            }
            5 if !ms.is_empty() => {
                let mut m = ms.last().unwrap().clone();
                m.content = format!("{} edited {step}", m.content);
                assert!(store.put_message(&s, &m).await.unwrap());
                *ms.last_mut().unwrap() = m;
            }
            _ => {
                let turn = [
                    message(&t, Role::User, &format!("q{step}"), step as i64),
                    message(&t, Role::Assistant, &format!("a{step}"), step as i64),
                ];
                assert!(store.put_messages(&s, &turn).await.unwrap());
                ms.extend(turn);
            }
        }
        let tail = tail_of(&*store, &s, &t.id, 3).await;
        seen.push((
            tail.count,
            tail.messages.iter().map(|m| m.content.clone()).collect(),
        ));
    }
    seen
}

pub async fn threads_list_newest_first_and_are_limited(store: Arc<dyn TestStore>) {
    let (s, _) = claimed(&*store).await;
    for i in 0..MAX_THREADS {
        store
            .create_thread(&s, &thread(&format!("t{i}"), i as i64))
            .await
            .unwrap();
    }
    assert_eq!(
        store.create_thread(&s, &thread("too many", 0)).await,
        Err(StoreError::TooManyThreads)
    );
    let list = store.list_threads(&s).await.unwrap();
    assert_eq!(list.len(), MAX_THREADS);
    assert_eq!(list[0].title, format!("t{}", MAX_THREADS - 1));
}

pub async fn deleting_a_session_deletes_its_threads(store: Arc<dyn TestStore>) {
    let (s, _) = claimed(&*store).await;
    let t = thread("t", 1);
    store.create_thread(&s, &t).await.unwrap();
    store
        .put_message(&s, &message(&t, Role::User, "x", 2))
        .await
        .unwrap();
    assert!(store.delete(&s).await.unwrap());
    assert_eq!(store.claim(&s, &proof(), None).await.unwrap(), Claim::Ended);
    assert_eq!(
        store.list_threads(&s).await,
        Err(StoreError::NoSuchSession),
        "no claim brings the threads back"
    );
    assert_eq!(
        store.get_thread(&s, &t.id).await,
        Err(StoreError::NoSuchSession)
    );
}
