//! Conformance cases for the open statistics (`StatisticsStore`): the live counts of people
//! waiting and a person's position, and the anonymous counters the purge of an offer writes
//! (`wave_stats`, `fill_times`, `practice_stats`).

use chrono::Duration;
use uuid::Uuid;

use super::lifecycle::{claimed, day, era, exists, invite, offer_at, waiting_since};
use super::offers::practice;
use super::{insert_active_person, insert_person, minutes, ms};
use crate::{
    AreaCount, CheckInOutcome, FillTimeRow, PracticeCounts, Store, StoreError, WaitingPosition,
    WaveStatRow,
};

pub async fn people_waiting_are_counted_by_area_and_position(store: &dyn Store) {
    let e = era();
    // Three waiting in 10115, one after the other; one unconfirmed and one paused do not count.
    let first = insert_active_person(store, e, e).await.0.id;
    let second = insert_active_person(store, e + minutes(1), e + minutes(1))
        .await
        .0
        .id;
    let third = insert_active_person(store, e + minutes(2), e + minutes(2))
        .await
        .0
        .id;
    insert_person(store, e + minutes(3)).await;
    let paused = insert_active_person(store, e + minutes(4), e + minutes(4))
        .await
        .0
        .id;
    store
        .set_paused(paused, true, e + minutes(5))
        .await
        .unwrap();

    assert_eq!(
        store.waiting_by_area().await.unwrap(),
        vec![AreaCount {
            area: "10".to_owned(),
            waiting: 3
        }]
    );
    let here = vec!["10115".to_owned(), "10117".to_owned()];
    for (id, ahead) in [(first, 0), (second, 1), (third, 2)] {
        assert_eq!(
            store.waiting_position(id, &here).await.unwrap(),
            WaitingPosition { ahead, total: 3 }
        );
    }
    // A paused person is told who is ahead; they are not among those waiting.
    assert_eq!(
        store.waiting_position(paused, &here).await.unwrap(),
        WaitingPosition { ahead: 3, total: 3 }
    );
    assert_eq!(
        store
            .waiting_position(second, &["80331".to_owned()])
            .await
            .unwrap(),
        WaitingPosition { ahead: 0, total: 0 }
    );
    assert_eq!(
        store.waiting_position(second, &[]).await.unwrap(),
        WaitingPosition { ahead: 0, total: 0 }
    );
    assert!(matches!(
        store.waiting_position(Uuid::new_v4(), &here).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn purge_writes_wave_fill_time_and_practice_counters(store: &dyn Store) {
    let e = era();
    let today = day(1985, 6, 1);
    let practice_id = practice(store).await.account.id;
    let other_practice = practice(store).await.account.id;

    // x: 2 doses; wave 1 invites three, one claims; wave 2 invites one, who claims 7 minutes
    // after posting: filled. One comes, one does not.
    let x = offer_at(store, practice_id, e, 2, "10115").await;
    let people: Vec<Uuid> = [
        waiting_since(store, e).await.0,
        waiting_since(store, e).await.0,
        waiting_since(store, e).await.0,
        waiting_since(store, e).await.0,
    ]
    .to_vec();
    let first = invite(store, x.id, 1, &people[..3], e + minutes(1)).await;
    let came = claimed(store, &first.invitations[0].0, x.id, e + minutes(2)).await;
    let second = invite(store, x.id, 2, &people[3..], e + minutes(5)).await;
    let missed = claimed(store, &second.invitations[0].0, x.id, e + minutes(7)).await;
    assert_eq!(
        store.check_in(x.id, &came.code, x.starts_at).await.unwrap(),
        CheckInOutcome::CheckedIn
    );
    assert!(
        store
            .mark_no_show(x.id, &missed.code, x.starts_at)
            .await
            .unwrap()
    );
    // z: one dose of another practice in another area, nobody came: not filled.
    let z = offer_at(store, other_practice, e, 1, "80331").await;

    let purged = store
        .purge_finished_offers(x.ends_at.max(z.ends_at) + ms(1), 10)
        .await
        .unwrap();
    assert_eq!(purged.len(), 2);
    assert!(!exists(store, people[0]).await);
    assert!(exists(store, people[1]).await);

    assert_eq!(
        store.wave_stats(today, today).await.unwrap(),
        vec![
            WaveStatRow {
                day: today,
                wave: 1,
                invited: 3,
                claimed: 1
            },
            WaveStatRow {
                day: today,
                wave: 2,
                invited: 1,
                claimed: 1
            },
        ]
    );
    let filled = vec![FillTimeRow {
        day: today,
        area: "10".to_owned(),
        minutes: 7,
        offers: 1,
    }];
    assert_eq!(store.fill_times(today, today, None).await.unwrap(), filled);
    assert_eq!(
        store
            .fill_times(today, today, Some(practice_id))
            .await
            .unwrap(),
        filled
    );
    assert!(
        store
            .fill_times(today, today, Some(other_practice))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .practice_counts(practice_id, today, today)
            .await
            .unwrap(),
        PracticeCounts {
            doses_placed: 1,
            checked_in: 1,
            no_show: 1
        }
    );
    assert_eq!(
        store
            .practice_counts(other_practice, today, today)
            .await
            .unwrap(),
        PracticeCounts::default()
    );
    // Outside the days asked for: nothing.
    let next = today + Duration::days(1);
    assert!(store.wave_stats(next, next).await.unwrap().is_empty());
    assert_eq!(
        store
            .practice_counts(practice_id, next, next)
            .await
            .unwrap(),
        PracticeCounts::default()
    );
}
