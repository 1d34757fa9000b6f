//! What a process hands over once a transaction commits: jobs for its
//! relay to publish, or, of the kinds it serves, for itself to run.

use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};

use super::HELD_AT_MOST;
use crate::clock::Millis;
use crate::jobs::JobKind;
use crate::store::outbox::Pending;

/// Where a process hands over the jobs of each commit, for its relay to
/// publish or for itself to run. Cheap to clone; without a relay running,
/// jobs are left to the sweep of another process.
#[derive(Clone, Default)]
pub struct Outgoing {
    handed: Arc<Handed>,
    /// The kinds of jobs this handle's commits run here.
    here: Option<Arc<Here>>,
}

#[derive(Default)]
struct Handed {
    jobs: Mutex<Vec<Pending>>,
    ready: Notify,
    /// Jobs published, or settled here, not yet stamped, with when taken.
    settled: Mutex<Vec<(i64, Millis)>>,
}

struct Here {
    kinds: Vec<JobKind>,
    room: Arc<Semaphore>,
    jobs: mpsc::UnboundedSender<RunHere>,
}

/// A job committed in this process, for this process to run.
pub struct RunHere {
    pub job: Pending,
    /// One of the places [`Outgoing::running_here`] allows: held while the
    /// job runs.
    pub room: OwnedSemaphorePermit,
}

impl Outgoing {
    /// A handle over the same relay whose committed jobs of `kinds` are
    /// given to this process's runner (the receiver), at most `at_most` at
    /// once; the rest, and those past that, go to the relay. Jobs reach the
    /// relay too once the receiver is gone.
    pub fn running_here(
        &self,
        kinds: &[JobKind],
        at_most: usize,
    ) -> (Self, mpsc::UnboundedReceiver<RunHere>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let here = Here {
            kinds: kinds.to_vec(),
            room: Arc::new(Semaphore::new(at_most.max(1))),
            jobs: tx,
        };
        let handle = Self {
            handed: self.handed.clone(),
            here: Some(Arc::new(here)),
        };
        (handle, rx)
    }

    /// Hands over jobs whose transaction has committed.
    pub fn committed(&self, jobs: Vec<Pending>) {
        let jobs = match &self.here {
            Some(here) => here.keep(jobs),
            None => jobs,
        };
        if jobs.is_empty() {
            return;
        }
        let mut held = self.handed.jobs.lock().expect("outgoing jobs");
        if held.len() + jobs.len() > HELD_AT_MOST {
            // In the outbox still: a sweep publishes them.
            return;
        }
        held.extend(jobs);
        drop(held);
        self.handed.ready.notify_one();
    }

    /// Job `id`, taken at `taken`, is settled here: the relay stamps it so
    /// no sweep publishes it.
    pub fn settled(&self, id: i64, taken: Millis) {
        self.settled_all(&[(id, taken)]);
    }

    pub(super) fn settled_all(&self, jobs: &[(i64, Millis)]) {
        let mut settled = self.handed.settled.lock().expect("settled jobs");
        if settled.len() < HELD_AT_MOST {
            settled.extend_from_slice(jobs);
        }
    }

    pub(super) fn take_settled(&self) -> Vec<(i64, Millis)> {
        std::mem::take(&mut *self.handed.settled.lock().expect("settled jobs"))
    }

    /// Waits until jobs may have been handed over.
    pub(super) async fn handed(&self) {
        self.handed.ready.notified().await;
    }

    /// Looks for handed jobs again (more may have come meanwhile).
    pub(super) fn look_again(&self) {
        self.handed.ready.notify_one();
    }

    pub(super) fn take(&self, room: usize) -> Vec<Pending> {
        let mut held = self.handed.jobs.lock().expect("outgoing jobs");
        let n = held.len().min(room);
        held.drain(..n).collect()
    }
}

impl Here {
    /// Keeps the jobs to run here; returns the others.
    fn keep(&self, jobs: Vec<Pending>) -> Vec<Pending> {
        let mut others = Vec::new();
        for job in jobs {
            let ours = JobKind::parse(&job.kind).is_some_and(|kind| self.kinds.contains(&kind));
            let room = ours.then(|| self.room.clone().try_acquire_owned().ok());
            match room.flatten() {
                Some(room) => {
                    if let Err(refused) = self.jobs.send(RunHere { job, room }) {
                        others.push(refused.0.job);
                    }
                }
                None => others.push(job),
            }
        }
        others
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: i64, kind: JobKind) -> Pending {
        Pending {
            id,
            kind: kind.as_str().to_owned(),
            payload: "{}".to_owned(),
            trace_id: String::new(),
            created_at: 0,
        }
    }

    fn ids(jobs: &[Pending]) -> Vec<i64> {
        jobs.iter().map(|j| j.id).collect()
    }

    #[test]
    fn jobs_of_the_kinds_served_run_here_while_there_is_room_the_rest_go_to_the_relay() {
        let relay = Outgoing::default();
        let (committing, mut here) = relay.running_here(&[JobKind::Notify], 2);
        committing.committed(vec![
            job(1, JobKind::Notify),
            job(2, JobKind::Unlock),
            job(3, JobKind::Notify),
            job(4, JobKind::Notify),
        ]);
        let first = here.try_recv().expect("a job to run here");
        let second = here.try_recv().expect("a second job to run here");
        assert_eq!((first.job.id, second.job.id), (1, 3));
        assert!(here.try_recv().is_err(), "no room for a third");
        assert_eq!(ids(&relay.take(10)), [2, 4]);

        // A job run to its end gives its room back.
        drop(first);
        committing.committed(vec![job(5, JobKind::Notify)]);
        assert_eq!(here.try_recv().expect("room again").job.id, 5);

        // With the runner gone, everything goes to the relay.
        drop(here);
        drop(second);
        committing.committed(vec![job(6, JobKind::Notify)]);
        assert_eq!(ids(&relay.take(10)), [6]);
    }
}
