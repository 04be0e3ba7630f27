//! Conformance cases for the abuse limits' fixed-window counters (`count_hit`,
//! `purge_rate_counters`).

use super::{join_all, minutes, random_bytes, t0, warm_up};
use crate::Store;

/// Hits are counted per key and window; other keys and windows are separate.
pub async fn rate_counters_count_per_key_and_window(store: &dyn Store) {
    let key = random_bytes(32);
    let other = random_bytes(32);
    let window = t0() + minutes(60);
    for expected in 1..=3 {
        assert_eq!(store.count_hit(&key, window).await.unwrap(), expected);
    }
    assert_eq!(store.count_hit(&other, window).await.unwrap(), 1);
    assert_eq!(store.count_hit(&key, window + minutes(1)).await.unwrap(), 1);
    assert_eq!(store.count_hit(&key, window).await.unwrap(), 4);
}

/// Parallel hits (as from several web processes) are all counted: none is lost, none doubled.
pub async fn racing_rate_hits_are_all_counted(store: &dyn Store) {
    let key = random_bytes(32);
    warm_up(store).await;
    let window = t0() + minutes(120);
    let results = join_all((0..8).map(|_| store.count_hit(&key, window)).collect()).await;
    let mut counts: Vec<i64> = results
        .into_iter()
        .map(|r| r.expect("racing count_hit failed"))
        .collect();
    counts.sort_unstable();
    assert_eq!(counts, (1..=8).collect::<Vec<i64>>());
}

/// The purge removes windows that started before the cut-off and keeps the rest.
pub async fn old_rate_windows_are_purged(store: &dyn Store) {
    let key = random_bytes(32);
    // Before every other case's windows, so a parallel case loses nothing.
    let cut = t0() - minutes(24 * 60);
    store.count_hit(&key, cut - minutes(1)).await.unwrap();
    store.count_hit(&key, cut).await.unwrap();
    assert!(store.purge_rate_counters(cut).await.unwrap() >= 1);
    // The old window is gone (counting starts again), the current one kept its hit.
    assert_eq!(store.count_hit(&key, cut - minutes(1)).await.unwrap(), 1);
    assert_eq!(store.count_hit(&key, cut).await.unwrap(), 2);
}
