//! Concurrency and load (issue 4, item 5): many lifecycles at once lose
//! none and leave none; two `create`s racing for one ID give exactly one
//! container and one clean error.
//!
//! Bug classes caught: a check-then-act ID reservation (two racers both
//! see the ID free and both create, or one overwrites the other's record
//! or FIFO); records or index entries written non-atomically so a parallel
//! `list`/`state`/`delete` reads a torn file; a shared state root that one
//! verb rewrites wholesale (losing another's entry); a loser that undoes
//! the winner's files on its way out; leaks that only show under load
//! (processes, index entries, records).

use crate::common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Instant;

/// How many containers the load test runs: `HUSK_IT_LOAD`, default 1000.
fn load() -> usize {
    std::env::var("HUSK_IT_LOAD")
        .ok()
        .map(|v| v.parse().expect("HUSK_IT_LOAD must be a number"))
        .unwrap_or(1000)
}

const WORKERS: usize = 8;

/// `husk --root ROOT <args>` as the user of `s`.
fn husk(s: &Scratch, root: &Path, args: &[&str]) -> Command {
    let mut cmd = s.command(&harness().husk);
    cmd.arg("--root").arg(root).args(args);
    cmd
}

/// 8 workers, each with its own bundle (records are per ID inside it), all
/// sharing one state root, run create → start → state → delete --force for
/// `HUSK_IT_LOAD` containers with distinct IDs, as the user, without a PID
/// namespace. Every verb succeeds, every container is `running` or
/// `stopped` after start, and nothing is left: no process, no record, no
/// FIFO, an empty state root.
#[test]
fn parallel_lifecycles_lose_none_and_leave_none() {
    let n = load();
    let root_dir = Scratch::new(Who::User);
    let root = root_dir.mkdir("state");
    let mut bundles = Vec::new();
    for w in 0..WORKERS {
        let mut b = Bundle::new(Who::User);
        let mark = format!("husk-it-load-{}-end", b.s.id);
        b.without_namespace("pid")
            .set("/process/env/-", json!(format!("HUSK_IT_MARK={mark}")));
        // Half the workers' programs exit at once, half live a little.
        if w % 2 == 0 {
            b.args(&["true"]);
        } else {
            b.args(&["sleep", "0.1"]);
        }
        b.write_config();
        bundles.push((b, mark));
    }
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let statuses = Arc::new(Mutex::new(
        std::collections::BTreeMap::<String, usize>::new(),
    ));
    let started = Instant::now();
    let prefix = root_dir.id.as_str();
    std::thread::scope(|scope| {
        for (w, (b, _)) in bundles.iter().enumerate() {
            let (errors, statuses, root) = (errors.clone(), statuses.clone(), root.clone());
            scope.spawn(move || {
                let out = b.s.dir.join("out");
                let err = b.s.dir.join("err");
                let bundle = b.dir.to_str().unwrap();
                let call = |args: &[&str]| {
                    let mut cmd = husk(&b.s, &root, args);
                    run_timeout_to(&mut cmd, None, TIMEOUT, &out, &err)
                };
                for i in (w..n).step_by(WORKERS) {
                    let id = format!("{prefix}-c{i}");
                    let steps: [&[&str]; 4] = [
                        &["create", "--bundle", bundle, &id],
                        &["start", &id],
                        &["state", &id],
                        &["delete", "--force", &id],
                    ];
                    for args in steps {
                        let o = call(args);
                        if o.code != 0 {
                            errors
                                .lock()
                                .unwrap()
                                .push(format!("{}: {o:?}", args.join(" ")));
                            break;
                        }
                        if args[0] == "state" {
                            let st = serde_json::from_str::<Value>(&o.stdout)
                                .ok()
                                .and_then(|v| v["status"].as_str().map(String::from))
                                .unwrap_or_else(|| format!("unparsable: {:?}", o.stdout));
                            if st != "running" && st != "stopped" {
                                errors
                                    .lock()
                                    .unwrap()
                                    .push(format!("{id}: status {st} after start"));
                            }
                            *statuses.lock().unwrap().entry(st).or_default() += 1;
                        }
                    }
                }
            });
        }
    });
    let took = started.elapsed();
    eprintln!(
        "{n} containers, {WORKERS} workers: {took:?} ({:?} per container); statuses after start: {:?}",
        took / n.max(1) as u32,
        statuses.lock().unwrap()
    );
    let errors = errors.lock().unwrap();
    assert!(
        errors.is_empty(),
        "{} of {n} lifecycles failed; first ones:\n{}",
        errors.len(),
        errors
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(
        statuses.lock().unwrap().values().sum::<usize>(),
        n,
        "containers that never reached running or stopped"
    );
    assert_eq!(names(&root), Vec::<String>::new(), "state root not empty");
    for (b, mark) in &bundles {
        assert_eq!(names(&b.dir), ["config.json"], "left in {:?}", b.dir);
        assert_eq!(marked_processes(mark), vec![], "programs left");
        assert_eq!(b.s.leftover_processes(), Vec::<u32>::new(), "husk left");
        assert_eq!(b.s.leftover_mounts(), Vec::<String>::new(), "mounts left");
    }
    assert_eq!(root_dir.leftover_processes(), Vec::<u32>::new());
}

/// Two `create`s of one ID started at the same moment, 20 rounds (even
/// rounds: the same bundle; odd rounds: two bundles, so only the index in
/// the shared state root can arbitrate): exactly one succeeds, the other
/// fails with one line saying the container already exists, and after
/// `delete --force` nothing is left.
#[test]
fn racing_creates_of_one_id() {
    let root_dir = Scratch::new(Who::User);
    let root = root_dir.mkdir("state");
    let mut bundles = Vec::new();
    for _ in 0..2 {
        let mut b = Bundle::new(Who::User);
        let mark = format!("husk-it-race-{}-end", b.s.id);
        b.set("/process/env/-", json!(format!("HUSK_IT_MARK={mark}")))
            .sh("exec sleep 30");
        b.write_config();
        bundles.push((b, mark));
    }
    for round in 0..20 {
        let id = format!("{}-r{round}", root_dir.id);
        let pick = |k: usize| {
            if round % 2 == 0 {
                &bundles[0]
            } else {
                &bundles[k]
            }
        };
        let barrier = Arc::new(Barrier::new(2));
        let outs: Vec<(Outcome, PathBuf)> = std::thread::scope(|scope| {
            let racers: Vec<_> = (0..2)
                .map(|k| {
                    let (b, _) = pick(k);
                    let (barrier, root, id) = (barrier.clone(), root.clone(), id.clone());
                    scope.spawn(move || {
                        let pid_file = b.s.dir.join(format!("pid-{round}-{k}"));
                        let mut cmd = husk(
                            &b.s,
                            &root,
                            &[
                                "create",
                                "--bundle",
                                b.dir.to_str().unwrap(),
                                "--pid-file",
                                pid_file.to_str().unwrap(),
                                &id,
                            ],
                        );
                        barrier.wait();
                        (run_timeout(&mut cmd, None, TIMEOUT), pid_file)
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let winners: Vec<usize> = (0..2).filter(|k| outs[*k].0.code == 0).collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: winners {winners:?}: {outs:#?}"
        );
        let (w, l) = (winners[0], 1 - winners[0]);
        let loser = &outs[l].0;
        let err = loser.stderr.trim();
        assert!(
            err.lines().count() == 1
                && err.starts_with("husk: ")
                && (err.contains("already exists") || err.contains("EEXIST")),
            "round {round}: the loser's error: {loser:#?}"
        );
        assert!(
            !outs[l].1.exists(),
            "round {round}: the loser wrote a pid file"
        );
        assert!(
            outs[w].1.exists(),
            "round {round}: the winner wrote no pid file"
        );
        // The winner's container is intact.
        let (wb, _) = pick(w);
        let mut st = husk(&wb.s, &root, &["state", &id]);
        let st = run_timeout(&mut st, None, TIMEOUT);
        let v: Value = serde_json::from_str(st.ok()).unwrap();
        assert_eq!(v["status"], "created", "round {round}: {v}");
        assert_eq!(v["bundle"], wb.dir.to_str().unwrap(), "round {round}: {v}");
        let mut del = husk(&wb.s, &root, &["delete", "--force", &id]);
        run_timeout(&mut del, None, TIMEOUT).ok();
        assert_eq!(
            names(&root),
            Vec::<String>::new(),
            "round {round}: state root"
        );
        for (b, mark) in &bundles {
            assert_eq!(names(&b.dir), ["config.json"], "round {round}: {:?}", b.dir);
            let left = marked_processes(mark);
            assert_eq!(left, vec![], "round {round}: programs left");
            wait_for("husk processes to go", || {
                b.s.leftover_processes().is_empty()
            });
        }
    }
}
