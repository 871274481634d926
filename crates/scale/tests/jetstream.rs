//! End-to-end behaviour against a real `nats-server -js` (docs/SCALE-OUT.md): exactly
//! once by entry ID, a `kill -9`ed worker, a server restart, a poison entry, scaling.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::Context;
use common::{entries, stand_in, Server, POISON};
use opensoc_scale::{
    connect, ensure_streams, CollectOptions, Collector, Publisher, Settings, WorkItem, Worker,
    WorkerStatsSnapshot,
};
use opensoc_verdict::Verdict;
use tokio::sync::watch;

/// Environment of the child worker that `killed_worker_entries_go_to_the_others` starts.
const CHILD_URL: &str = "OPENSOC_SCALE_CHILD_URL";

/// Short waits, so that failures show within a test's time.
fn quick_settings() -> Settings {
    Settings {
        ack_wait: Duration::from_secs(2),
        max_deliver: 3,
        retry_delay: Duration::from_millis(100),
        ..Settings::default()
    }
}

async fn publish_all(js: &Context, settings: &Settings, items: &[WorkItem]) -> (u64, u64) {
    let mut publisher = Publisher::new(js.clone(), settings).await.unwrap();
    for item in items {
        publisher.publish_entry(item).await.unwrap();
    }
    let counts = publisher.finish().await.unwrap();
    (counts.entries, counts.duplicates)
}

/// Workers, each with its own connection, running until `stop` is sent.
struct Pool {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<WorkerStatsSnapshot>>,
}

impl Pool {
    async fn start(url: &str, settings: &Settings, n: usize, cost: Duration, batch: usize) -> Pool {
        let (stop, rx) = watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..n {
            let js = connect(url).await.unwrap();
            let worker = Worker::new(js, settings, Arc::new(stand_in(cost)), batch)
                .await
                .unwrap();
            let mut rx = rx.clone();
            tasks.push(tokio::spawn(async move {
                worker
                    .run(async move {
                        rx.wait_for(|s| *s).await.ok();
                    })
                    .await
            }));
        }
        Pool { stop, tasks }
    }

    async fn stop(self) -> WorkerStatsSnapshot {
        self.stop.send(true).ok();
        let mut sum = WorkerStatsSnapshot::default();
        for t in self.tasks {
            let s = t.await.unwrap();
            sum.done += s.done;
            sum.duplicates += s.duplicates;
            sum.redelivered += s.redelivered;
            sum.retried += s.retried;
            sum.dead_lettered += s.dead_lettered;
            sum.batches += s.batches;
        }
        sum
    }
}

/// Every verdict collected, in arrival order; fails the test on a repeated ID.
async fn collect(js: &Context, settings: &Settings, expect: usize) -> Vec<Verdict> {
    let mut collector = Collector::new(js.clone(), settings).await.unwrap();
    let mut got = Vec::new();
    let options = CollectOptions {
        expect: Some(expect),
        idle_timeout: Some(Duration::from_secs(60)),
        ..Default::default()
    };
    let summary = collector
        .run(&options, |v| {
            got.push(v);
            Ok(())
        })
        .await
        .unwrap();
    assert!(!summary.timed_out, "collected {} of {expect}", got.len());
    got
}

fn assert_exactly_once(verdicts: &[Verdict], items: &[WorkItem]) {
    let ids: HashSet<&str> = verdicts.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(ids.len(), verdicts.len(), "an entry was collected twice");
    let wanted: HashSet<&str> = items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, wanted);
}

async fn stream_messages(js: &Context, name: &str) -> u64 {
    js.get_stream(name)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousand_entries_three_workers_every_verdict_once() {
    let Some(server) = Server::start() else {
        return;
    };
    let settings = quick_settings();
    let js = connect(&server.url()).await.unwrap();
    let items = entries(1000);
    let started = Instant::now();
    assert_eq!(publish_all(&js, &settings, &items).await, (1000, 0));
    // The same entries again (a re-read file): the server's duplicate window drops all.
    assert_eq!(publish_all(&js, &settings, &items).await, (0, 1000));
    let pool = Pool::start(&server.url(), &settings, 3, Duration::ZERO, 8).await;
    let verdicts = collect(&js, &settings, 1000).await;
    let elapsed = started.elapsed();
    let stats = pool.stop().await;
    assert_exactly_once(&verdicts, &items);
    assert_eq!(stats.done, 1000);
    assert_eq!(stream_messages(&js, &settings.results_stream).await, 1000);
    assert_eq!(stream_messages(&js, &settings.entries_stream).await, 0);
    eprintln!("1,000 entries, 3 workers, publish to last verdict: {elapsed:.2?}");
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
}

/// The worker `killed_worker_entries_go_to_the_others` starts as a child process (this
/// test binary again, this test alone) and kills with SIGKILL. Idle unless started so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a child process of killed_worker_entries_go_to_the_others"]
async fn child_worker() {
    let Ok(url) = std::env::var(CHILD_URL) else {
        return;
    };
    let js = connect(&url).await.unwrap();
    let worker = Worker::new(
        js,
        &quick_settings(),
        Arc::new(stand_in(Duration::from_millis(40))),
        8,
    )
    .await
    .unwrap();
    worker.run(std::future::pending()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_worker_entries_go_to_the_others() {
    let Some(server) = Server::start() else {
        return;
    };
    let settings = quick_settings();
    let js = connect(&server.url()).await.unwrap();
    let items = entries(300);
    publish_all(&js, &settings, &items).await;
    // The consumer exists (ack wait 2 s) before the child attaches to it.
    let survivors = Pool::start(&server.url(), &settings, 2, Duration::from_millis(40), 8).await;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "child_worker", "--nocapture"])
        .env(CHILD_URL, server.url())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();

    // Kill it while it holds entries: unacknowledged deliveries beyond what the two
    // survivors (one batch of 8 each at most) can hold.
    let entries_stream = js.get_stream(&settings.entries_stream).await.unwrap();
    let mut consumer = entries_stream
        .get_consumer::<async_nats::jetstream::consumer::pull::Config>(&settings.consumer)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "the child never took a batch");
        let results = stream_messages(&js, &settings.results_stream).await;
        let pending = consumer.info().await.unwrap().num_ack_pending;
        if results >= 20 && pending > 16 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let at_kill = stream_messages(&js, &settings.results_stream).await;
    assert!(at_kill < 300, "the run was over before the kill");

    let verdicts = collect(&js, &settings, 300).await;
    let stats = survivors.stop().await;
    assert_exactly_once(&verdicts, &items);
    assert!(
        stats.redelivered > 0,
        "the dead worker's entries came back: {stats:?}"
    );
    assert_eq!(stream_messages(&js, &settings.results_stream).await, 300);
    assert_eq!(stream_messages(&js, &settings.entries_stream).await, 0);
}

/// How the server goes away mid-run.
#[derive(Clone, Copy, PartialEq)]
enum Stop {
    /// SIGTERM: the server writes its state and exits (a `systemctl restart`).
    Clean,
    /// SIGKILL: whatever was not yet written is the new process's problem.
    Kill,
}

/// 400 entries, 2 workers; the server stops after 50 verdicts and starts again on the
/// same store. Returns what the work queue still holds afterwards, by entry ID, and the
/// IDs that have verdicts.
async fn restart_mid_run(stop: Stop) -> Option<(Vec<String>, HashSet<String>)> {
    let mut server = Server::start()?;
    let settings = quick_settings();
    let url = server.url();
    let js = connect(&url).await.unwrap();
    let items = entries(400);
    publish_all(&js, &settings, &items).await;
    let pool = Pool::start(&url, &settings, 2, Duration::from_millis(5), 8).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while stream_messages(&js, &settings.results_stream).await < 50 {
        assert!(Instant::now() < deadline, "no progress before the restart");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let at_stop = stream_messages(&js, &settings.results_stream).await;
    match stop {
        Stop::Clean => server.terminate(),
        Stop::Kill => server.kill(),
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart();

    let verdicts = collect(&js, &settings, 400).await;
    assert_exactly_once(&verdicts, &items);
    // Entries whose ack the server had not written come back, are redone, and their
    // second verdicts are dropped as duplicates: give the workers time for that.
    let deadline = Instant::now() + Duration::from_secs(8);
    while stream_messages(&js, &settings.entries_stream).await > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = pool.stop().await;
    assert!(at_stop < 400, "the run was over before the server stopped");
    assert!(stats.done >= 350, "{stats:?}");
    assert_eq!(stream_messages(&js, &settings.results_stream).await, 400);

    let mut entries_stream = js.get_stream(&settings.entries_stream).await.unwrap();
    let state = entries_stream.info().await.unwrap().state.clone();
    let mut left = Vec::new();
    for seq in state.first_sequence..=state.last_sequence {
        if let Ok(m) = entries_stream.get_raw_message(seq).await {
            left.push(serde_json::from_slice::<WorkItem>(&m.payload).unwrap().id);
        }
    }
    let done = verdicts.into_iter().map(|v| v.id).collect();
    Some((left, done))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_restart_mid_run_loses_nothing() {
    let Some((left, _)) = restart_mid_run(Stop::Clean).await else {
        return;
    };
    assert!(left.is_empty(), "work queue not drained: {left:?}");
}

/// nats-server 2.9 after a SIGKILL can keep entries in the work queue whose acks its
/// consumer did record: never delivered again, never lost, just not removed
/// (docs/SCALE-OUT.md). Every one of them must have its verdict.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_kill_9_mid_run_loses_nothing() {
    let Some((left, done)) = restart_mid_run(Stop::Kill).await else {
        return;
    };
    if !left.is_empty() {
        eprintln!(
            "after kill -9: {} finished entries left in the work queue",
            left.len()
        );
    }
    for id in &left {
        assert!(done.contains(id), "{id} left without a verdict");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_entry_goes_to_dead_letters_after_max_deliveries() {
    let Some(server) = Server::start() else {
        return;
    };
    let settings = quick_settings();
    let js = connect(&server.url()).await.unwrap();
    let mut items = entries(60);
    items[17].text = format!("{POISON} {}", items[17].text);
    let poison = items[17].clone();
    publish_all(&js, &settings, &items).await;
    let pool = Pool::start(&server.url(), &settings, 2, Duration::ZERO, 8).await;
    let verdicts = collect(&js, &settings, 59).await;
    assert!(verdicts.iter().all(|v| v.id != poison.id));

    let (_, _, mut dead) = ensure_streams(&js, &settings).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while dead.info().await.unwrap().state.messages == 0 {
        assert!(Instant::now() < deadline, "no dead letter");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = pool.stop().await;
    assert_eq!(stats.dead_lettered, 1);
    assert_eq!(stats.retried, (settings.max_deliver - 1) as u64);
    let letter = dead
        .get_raw_message(dead.cached_info().state.first_sequence)
        .await
        .unwrap();
    assert_eq!(
        letter.subject.as_str(),
        settings.dead_subject(&poison.source)
    );
    let back: WorkItem = serde_json::from_slice(&letter.payload).unwrap();
    assert_eq!(back, poison);
    let header = |name: &str| {
        letter
            .headers
            .get(name)
            .map(|v| v.as_str().to_string())
            .unwrap_or_default()
    };
    assert_eq!(
        header("Opensoc-Deliveries"),
        settings.max_deliver.to_string()
    );
    assert!(header("Opensoc-Error").contains("cannot read"));
    assert_eq!(stream_messages(&js, &settings.results_stream).await, 59);
    assert_eq!(stream_messages(&js, &settings.entries_stream).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn collector_hands_on_each_entry_once_across_runs() {
    let Some(server) = Server::start() else {
        return;
    };
    let settings = quick_settings();
    let js = connect(&server.url()).await.unwrap();
    let mut publisher = Publisher::new(js.clone(), &settings).await.unwrap();
    let verdict =
        |id: &str| Verdict::from_answer(id.into(), "x".into(), String::new(), Default::default());
    publisher.publish_verdict(&verdict("a:1")).await.unwrap();
    publisher.publish_verdict(&verdict("a:2")).await.unwrap();
    publisher.finish().await.unwrap();
    // A verdict stored again after the duplicate window (here: straight into the stream
    // under another message ID) must still reach the sink once.
    js.publish(
        settings.results_subject.clone(),
        serde_json::to_vec(&verdict("a:1")).unwrap().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    js.publish(settings.results_subject.clone(), "not json".into())
        .await
        .unwrap()
        .await
        .unwrap();

    let mut collector = Collector::new(js.clone(), &settings).await.unwrap();
    let mut ids = Vec::new();
    let summary = collector
        .run(&CollectOptions::default(), |v| {
            ids.push(v.id);
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(ids, ["a:1", "a:2"]);
    assert_eq!(
        (summary.verdicts, summary.duplicates, summary.malformed),
        (2, 1, 1)
    );
    let again = collector
        .run(&CollectOptions::default(), |v| {
            panic!("{} handed on twice", v.id)
        })
        .await
        .unwrap();
    assert_eq!(again.verdicts, 0);
    assert_eq!(again.duplicates, 3);
}

/// Entries per second with 1, 2 and 4 workers at a simulated model cost per entry, and
/// the coordinator's own cost per entry (publish, collect). Figures in docs/SCALE-OUT.md:
/// `cargo test -p opensoc-scale --test jetstream -- --nocapture scaling`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scaling_with_simulated_model_cost() {
    let Some(server) = Server::start() else {
        return;
    };
    let url = server.url();
    let js = connect(&url).await.unwrap();
    let cost = Duration::from_millis(20);
    let n = 400;
    let mut rates = Vec::new();
    for workers in [1usize, 2, 4] {
        let settings = Settings {
            entries_stream: format!("SCALE_ENTRIES_{workers}"),
            entries_subject: format!("scale{workers}.entries"),
            results_stream: format!("SCALE_RESULTS_{workers}"),
            results_subject: format!("scale{workers}.results"),
            dead_stream: format!("SCALE_DEAD_{workers}"),
            dead_subject: format!("scale{workers}.dead"),
            ..quick_settings()
        };
        let items = entries(n);
        publish_all(&js, &settings, &items).await;
        let started = Instant::now();
        let pool = Pool::start(&url, &settings, workers, cost, 8).await;
        let verdicts = collect(&js, &settings, n).await;
        let secs = started.elapsed().as_secs_f64();
        pool.stop().await;
        assert_exactly_once(&verdicts, &items);
        let rate = n as f64 / secs;
        eprintln!(
            "scaling: {workers} worker(s), {} ms per entry: {n} entries in {secs:.2} s = {rate:.1} entries/s (ideal {:.1})",
            cost.as_millis(),
            workers as f64 * 1000.0 / cost.as_millis() as f64
        );
        rates.push(rate);
    }
    assert!(rates[1] > 1.6 * rates[0], "2 workers: {rates:?}");
    assert!(rates[2] > 2.8 * rates[0], "4 workers: {rates:?}");

    // The coordinator's side alone: publishing entries, collecting verdicts.
    let settings = Settings {
        entries_stream: "COORD_ENTRIES".into(),
        entries_subject: "coord.entries".into(),
        results_stream: "COORD_RESULTS".into(),
        results_subject: "coord.results".into(),
        dead_stream: "COORD_DEAD".into(),
        dead_subject: "coord.dead".into(),
        ..quick_settings()
    };
    let n = 10_000;
    let items = entries(n);
    let started = Instant::now();
    assert_eq!(publish_all(&js, &settings, &items).await.0, n as u64);
    let publish = started.elapsed().as_secs_f64();
    let mut publisher = Publisher::new(js.clone(), &settings).await.unwrap();
    for item in &items {
        let v = Verdict::from_answer(
            item.id.clone(),
            item.text.clone(),
            String::new(),
            Default::default(),
        );
        publisher.publish_verdict(&v).await.unwrap();
    }
    publisher.finish().await.unwrap();
    let started = Instant::now();
    let collected = collect(&js, &settings, n).await;
    let collect_secs = started.elapsed().as_secs_f64();
    assert_eq!(collected.len(), n);
    eprintln!(
        "coordinator: publish {:.0} µs/entry ({:.0} entries/s), collect {:.0} µs/verdict ({:.0} verdicts/s)",
        publish * 1e6 / n as f64,
        n as f64 / publish,
        collect_secs * 1e6 / n as f64,
        n as f64 / collect_secs
    );
}
