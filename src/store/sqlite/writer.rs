//! One SQLite connection on a thread of its own, for the writes that come with every scan and
//! every new login page: WeChat callbacks, new login scenes (and the sandbox's QR tickets).
//!
//! Through sqlx every statement is a round trip to its connection's worker thread (~60–80 µs on
//! the 2-core benchmark machine), and a callback's transaction is about ten statements, one
//! after the other: that capped callbacks at ~1,600 a second with the CPU half idle. Here the
//! statements of a job run back to back on one thread, and jobs that arrive while one is being
//! written join its transaction (group commit). Each job still stands alone: it runs in its own
//! savepoint, so a job that fails leaves no trace and doesn't take the others with it, and no
//! job hears "done" before its transaction has committed. New login pages gained the same way:
//! their inserts no longer take turns at SQLite's write lock from the pool's connections.

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    path::Path,
    sync::mpsc,
};

use rusqlite::Connection;

/// Jobs sharing one transaction at most; past this the batch commits and a new one begins, so
/// one commit's latency stays bounded under a flood.
const MAX_BATCH: usize = 64;

/// Why a write didn't happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// SQLite refused one of the job's statements.
    #[error("database write failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The transaction the job was part of could not commit.
    #[error("database commit failed: {0}")]
    Commit(String),
    /// The job panicked; the writer carries on with the next.
    #[error("database write job panicked")]
    Panicked,
    /// The writer thread is gone (only at shutdown).
    #[error("database writer has stopped")]
    Stopped,
}

type Finish = Box<dyn FnOnce(Result<(), WriteError>) + Send>;
/// Runs its work on the connection it is given (or, given an error, just reports it) and says
/// whether the work succeeded; the returned `Finish` delivers the result after the commit.
type Job = Box<dyn FnOnce(Result<&Connection, WriteError>) -> (bool, Finish) + Send>;

/// A handle on the writer thread; cloning is cheap. The thread ends when the last handle is
/// dropped.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Opens a second connection to the (already migrated) database file at `path` and starts
    /// the writer thread.
    pub fn open(path: &Path) -> anyhow::Result<Writer> {
        let conn = Connection::open(path)?;
        conn.busy_handler(Some(super::keep_waiting))?;
        conn.execute_batch(&format!(
            "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; \
             PRAGMA wal_autocheckpoint = {};",
            super::AUTOCHECKPOINT_PAGES
        ))?;
        conn.set_prepared_statement_cache_capacity(32);
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("wxlogin-writer".into())
            .spawn(move || serve(conn, queue))?;
        Ok(Writer { jobs })
    }

    /// Runs `work` in the writer's current transaction and returns its result once that
    /// transaction has committed. If `work` fails (or panics), its statements are rolled back
    /// and the others in the batch are unaffected.
    pub async fn run<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<WriteError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let conn = match conn {
                Ok(conn) => conn,
                Err(e) => {
                    let finish: Finish = Box::new(move |_| {
                        let _ = done.send(Err(e.into()));
                    });
                    return (false, finish);
                }
            };
            let outcome = catch_unwind(AssertUnwindSafe(|| work(conn)));
            let ok = matches!(outcome, Ok(Ok(_)));
            let finish: Finish = Box::new(move |committed| {
                let result = match (committed, outcome) {
                    (Ok(()), Ok(result)) => result,
                    // A failed job's own error says more than the batch's commit.
                    (_, Ok(Err(e))) => Err(e),
                    (Err(e), Ok(Ok(_))) => Err(e.into()),
                    (_, Err(_)) => Err(WriteError::Panicked.into()),
                };
                let _ = done.send(result);
            });
            (ok, finish)
        });
        self.jobs.send(job).map_err(|_| WriteError::Stopped)?;
        result.await.map_err(|_| WriteError::Stopped)?
    }
}

/// The writer thread: a transaction per batch, a savepoint per job.
fn serve(conn: Connection, queue: mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut finishes = Vec::new();
        // IMMEDIATE takes the write lock now (waiting in the busy handler if another
        // connection holds it), so no job can fail halfway on a lock it couldn't upgrade.
        let began = conn.execute_batch("BEGIN IMMEDIATE");
        if let Err(e) = began {
            tracing::error!(error = %e, "database writer could not begin a transaction");
            let (_, finish) = first(Err(e.into()));
            finish(Ok(()));
            continue;
        }
        let mut next = Some(first);
        while let Some(job) = next.take() {
            finishes.push(run_one(&conn, job));
            if finishes.len() < MAX_BATCH {
                next = queue.try_recv().ok();
            }
        }
        let committed = conn.execute_batch("COMMIT").map_err(|e| {
            tracing::error!(error = %e, jobs = finishes.len(), "database writer could not commit");
            let _ = conn.execute_batch("ROLLBACK");
            e
        });
        for finish in finishes {
            finish(match &committed {
                Ok(()) => Ok(()),
                Err(e) => Err(WriteError::Commit(e.to_string())),
            });
        }
    }
}

/// One job inside its savepoint.
fn run_one(conn: &Connection, job: Job) -> Finish {
    if let Err(e) = conn.execute_batch("SAVEPOINT job") {
        return job(Err(e.into())).1;
    }
    let (ok, finish) = job(Ok(conn));
    let closed = if ok {
        conn.execute_batch("RELEASE job")
    } else {
        conn.execute_batch("ROLLBACK TO job; RELEASE job")
    };
    match closed {
        Ok(()) => finish,
        Err(e) => Box::new(move |_| finish(Err(e.into()))),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn writer() -> (tempfile::TempDir, Writer, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let reader = Connection::open(&path).unwrap();
        reader
            .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER NOT NULL);")
            .unwrap();
        let writer = Writer::open(&path).unwrap();
        (dir, writer, reader)
    }

    fn insert(v: i64) -> impl FnOnce(&Connection) -> Result<i64, WriteError> {
        move |conn| {
            conn.execute("INSERT INTO t (v) VALUES (?)", [v])?;
            Ok(v)
        }
    }

    fn values(reader: &Connection) -> Vec<i64> {
        let mut stmt = reader.prepare("SELECT v FROM t ORDER BY v").unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[tokio::test]
    async fn a_failed_or_panicking_job_leaves_no_trace_and_its_batch_commits() {
        let (_dir, writer, reader) = writer();
        // The first job holds the writer until the others are queued, so all of them share
        // one transaction.
        let (release, held) = mpsc::channel::<()>();
        let first = tokio::spawn({
            let writer = writer.clone();
            async move {
                writer
                    .run(move |conn| {
                        held.recv().unwrap();
                        insert(1)(conn)
                    })
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let failing = tokio::spawn({
            let writer = writer.clone();
            async move {
                writer
                    .run(|conn| {
                        insert(2)(conn)?;
                        // Fails after writing: its row must go.
                        conn.execute("INSERT INTO missing (v) VALUES (1)", [])?;
                        Ok::<_, WriteError>(2)
                    })
                    .await
            }
        });
        let panicking = tokio::spawn({
            let writer = writer.clone();
            async move {
                writer
                    .run(|conn| {
                        insert(3)(conn)?;
                        panic!("a bug in a job");
                        #[allow(unreachable_code)]
                        Ok::<_, WriteError>(3)
                    })
                    .await
            }
        });
        let last = tokio::spawn({
            let writer = writer.clone();
            async move { writer.run(insert(4)).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        release.send(()).unwrap();

        assert_eq!(first.await.unwrap().unwrap(), 1);
        assert!(matches!(failing.await.unwrap(), Err(WriteError::Sqlite(_))));
        assert!(matches!(
            panicking.await.unwrap(),
            Err(WriteError::Panicked)
        ));
        assert_eq!(last.await.unwrap().unwrap(), 4);
        assert_eq!(values(&reader), [1, 4]);
        // And the writer is still there.
        assert_eq!(writer.run(insert(5)).await.unwrap(), 5);
        assert_eq!(values(&reader), [1, 4, 5]);
    }

    #[tokio::test]
    async fn nothing_is_reported_before_it_is_visible_to_other_connections() {
        let (_dir, writer, reader) = writer();
        let runs: Vec<_> = (0..200)
            .map(|v| {
                tokio::spawn({
                    let writer = writer.clone();
                    async move { writer.run(insert(v)).await }
                })
            })
            .collect();
        for run in runs {
            let v = run.await.unwrap().unwrap();
            let seen: i64 = reader
                .query_row("SELECT count(*) FROM t WHERE v = ?", [v], |r| r.get(0))
                .unwrap();
            assert_eq!(seen, 1, "job {v} reported done before its commit");
        }
    }
}
