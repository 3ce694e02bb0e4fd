use std::sync::atomic::AtomicUsize;

use arrow::array::{Array, Int64Array};
use arrow::datatypes::{DataType, Field, Schema};

use super::*;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]))
}

fn row(v: i64) -> RecordBatch {
    RecordBatch::try_new(schema(), vec![Arc::new(Int64Array::from(vec![v]))]).unwrap()
}

fn value(row: &RecordBatch) -> i64 {
    row.column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0)
}

fn settings(ordered: bool, batch_size: usize, max_in_flight: usize) -> AsyncSettings {
    AsyncSettings { ordered, batch_size, linger: Duration::from_millis(5), max_in_flight }
}

/// Work that answers each request `v` with `v * 10` after `v` ms, counting requests in
/// flight and the most at once.
fn sleeper(counts: Arc<(AtomicUsize, AtomicUsize, AtomicUsize)>) -> impl FnMut(Vec<&i64>, Arc<AtomicU32>) -> Work<i64> {
    move |requests, attempts| {
        let values: Vec<i64> = requests.into_iter().copied().collect();
        let counts = counts.clone();
        Box::pin(async move {
            attempts.fetch_add(1, Ordering::Relaxed);
            let now = counts.0.fetch_add(1, Ordering::SeqCst) + 1;
            counts.1.fetch_max(now, Ordering::SeqCst);
            counts.2.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(values.iter().copied().max().unwrap_or(0) as u64)).await;
            counts.0.fetch_sub(1, Ordering::SeqCst);
            values.into_iter().map(|v| v * 10).collect()
        })
    }
}

fn no_cache(_: &HeldRow<i64, i64>, _: &i64) -> Result<()> {
    Ok(())
}

/// Six 10 ms requests under a bound of two, dispatched at once: the bound holds, and each
/// freed permit starts the next request at once, so all six finish at 30 ms without the
/// operator doing anything between them.
#[tokio::test(start_paused = true)]
async fn a_finished_request_frees_its_place_for_the_next_at_once() {
    let counts = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0)));
    let mut rows = AsyncRows::new(settings(true, 1, 2), Arc::new(Notify::new()));
    for v in 0..6 {
        rows.admit(row(v), 0, 10, 0, None, None);
    }
    let mut start = sleeper(counts.clone());
    let began = Instant::now();
    rows.dispatch(false, &mut start);
    while rows.unanswered() > 0 {
        rows.collect_one(&mut start, &mut no_cache).await.unwrap();
    }
    assert_eq!(began.elapsed(), Duration::from_millis(30), "three waves of two, back to back");
    assert_eq!(counts.1.load(Ordering::SeqCst), 2, "never more than the bound in flight");
    assert_eq!(rows.take_ready().rows.len(), 6);
}

/// Ordered output waits for the slowest earlier row, and a watermark leaves only after
/// the rows before it; unordered output lets a fast row pass a slow one.
#[tokio::test(start_paused = true)]
async fn rows_leave_in_order_and_watermarks_wait_for_the_rows_before_them() {
    for ordered in [true, false] {
        let counts = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0)));
        let mut start = sleeper(counts);
        let mut rows = AsyncRows::new(settings(ordered, 1, 10), Arc::new(Notify::new()));
        rows.admit(row(1), 0, 50, 0, None, None);
        rows.watermark(100);
        rows.admit(row(2), 0, 5, 0, None, None);
        rows.dispatch(false, &mut start);
        rows.collect_one(&mut start, &mut no_cache).await.unwrap(); // the 5 ms one
        let ready = rows.take_ready();
        let left: Vec<i64> = ready.rows.iter().map(|r| value(&r.row)).collect();
        assert_eq!(left, if ordered { vec![] } else { vec![2] }, "ordered: {ordered}");
        assert!(ready.watermarks.is_empty(), "row 1 holds the watermark back");
        rows.collect_one(&mut start, &mut no_cache).await.unwrap();
        let ready = rows.take_ready();
        let left: Vec<(i64, i64)> = ready.rows.iter().map(|r| (value(&r.row), r.result.unwrap())).collect();
        assert_eq!(left, if ordered { vec![(1, 500), (2, 50)] } else { vec![(1, 500)] });
        assert_eq!(ready.watermarks, vec![100]);
    }
}

/// Rows sharing a key while it is in flight get its result without a request of their
/// own; `on_result` sees only the asked row.
#[tokio::test(start_paused = true)]
async fn rows_sharing_a_key_in_flight_wait_for_its_answer() {
    let counts = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0)));
    let mut start = sleeper(counts.clone());
    let mut rows = AsyncRows::new(settings(true, 1, 10), Arc::new(Notify::new()));
    rows.admit(row(1), 0, 7, 0, None, Some("seven".into()));
    assert!(rows.is_shared("seven"));
    rows.admit(row(2), 0, 7, 0, None, Some("seven".into()));
    rows.admit(row(3), 0, 3, 0, Some(99), None); // answered already (a cached answer)
    rows.dispatch(true, &mut start);
    let mut seen = Vec::new();
    rows.collect_one(&mut start, &mut |slot, result| {
        seen.push((value(&slot.row), *result));
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(counts.2.load(Ordering::SeqCst), 1, "one request for both rows");
    assert_eq!(seen, vec![(1, 70)]);
    let results: Vec<i64> = rows.take_ready().rows.iter().map(|r| r.result.unwrap()).collect();
    assert_eq!(results, vec![70, 70, 99]);
    assert!(!rows.is_shared("seven"));
}

/// A snapshot holds every row with its attempts and result; decoding it gives them back
/// in order, to admit again.
#[tokio::test]
async fn held_rows_round_trip_through_a_snapshot() {
    let mut rows: AsyncRows<i64, i64> = AsyncRows::new(settings(true, 1, 10), Arc::new(Notify::new()));
    rows.admit(row(1), 0, 1, 2, None, None);
    rows.admit(row(2), 0, 2, 0, Some(20), None);
    let entry =
        rows.snapshot(&schema(), &|slot, attempts| format!("{attempts} {:?}", slot.result).into_bytes()).unwrap();
    let decoded = AsyncRows::<i64, i64>::decode_snapshot(&schema(), &entry).unwrap();
    let seen: Vec<(i64, String)> =
        decoded.iter().map(|(r, m)| (value(r), String::from_utf8(m.clone()).unwrap())).collect();
    assert_eq!(seen, vec![(1, "2 None".into()), (2, "0 Some(20)".into())]);
    assert!(AsyncRows::<i64, i64>::decode_snapshot(&schema(), &entry[..entry.len() - 3]).is_err());
    assert_eq!(decoded[0].0.num_rows(), 1);
    assert!(decoded[0].0.column(0).len() == 1);
}

fn run(values: std::ops::Range<i64>) -> RecordBatch {
    RecordBatch::try_new(schema(), vec![Arc::new(Int64Array::from_iter_values(values))]).unwrap()
}

/// Runs of rows cut at `room` fill requests of exactly `batch_size` rows, whatever the
/// input batches' sizes; the held and waiting counts are of rows; a snapshot holds each
/// run's rows one by one, each with its run's meta.
#[tokio::test(start_paused = true)]
async fn runs_cut_at_room_fill_requests_of_exactly_the_batch_size() {
    let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = sizes.clone();
    // Each request's work answers each run with the rows of the whole request.
    let mut start = move |runs: Vec<&RecordBatch>, _| -> Work<usize> {
        let rows: usize = runs.iter().map(|r| r.num_rows()).sum();
        seen.lock().unwrap().push(rows);
        let n = runs.len();
        Box::pin(async move { vec![rows; n] })
    };
    let mut rows: AsyncRows<RecordBatch, usize> = AsyncRows::new(settings(true, 4, 10), Arc::new(Notify::new()));
    let mut next = 0;
    for size in [3, 6, 1, 2] {
        let batch = run(next..next + size);
        let mut offset = 0;
        while offset < batch.num_rows() {
            let len = rows.room().min(batch.num_rows() - offset);
            let piece = batch.slice(offset, len);
            rows.admit_run(piece.clone(), piece, 1);
            offset += len;
        }
        next += size;
    }
    assert_eq!((rows.len(), rows.unanswered()), (12, 12));
    let entry = rows.snapshot(&schema(), &|slot, attempts| format!("{attempts}/{}", slot.row.num_rows()).into_bytes());
    let decoded = AsyncRows::<RecordBatch, usize>::decode_snapshot(&schema(), &entry.unwrap()).unwrap();
    let metas: Vec<String> = decoded.iter().map(|(_, m)| String::from_utf8(m.clone()).unwrap()).collect();
    assert_eq!(decoded.iter().map(|(r, _)| value(r)).collect::<Vec<_>>(), (0..12).collect::<Vec<_>>());
    // Runs: [0,1,2] [3] | [4,5,6,7] | [8] [9] [10,11]
    let want = ["1/3", "1/3", "1/3", "1/1", "1/4", "1/4", "1/4", "1/4", "1/1", "1/1", "1/2", "1/2"];
    assert_eq!(metas, want);
    rows.dispatch(false, &mut start);
    while rows.unanswered() > 0 {
        rows.collect_one(&mut start, &mut |_, _| Ok(())).await.unwrap();
    }
    assert_eq!(*sizes.lock().unwrap(), vec![4, 4, 4], "three full requests");
    let ready = rows.take_ready();
    let out: Vec<i64> = ready
        .rows
        .iter()
        .flat_map(|r| r.row.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec())
        .collect();
    assert_eq!(out, (0..12).collect::<Vec<_>>(), "every row once, in order");
    assert!(rows.is_empty());
    assert_eq!(rows.len(), 0, "no row is held");
}
