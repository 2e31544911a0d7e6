//! Registry places: how many registry operations run at once, and which endpoints are
//! answered at once because they just timed out. Bounds what reviews can make signet open
//! (connections, descriptors, buffered bodies) and keeps one registry from starving others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore, SemaphorePermit};

/// Endpoints remembered (for their semaphores, or as stalled) before idle ones are dropped:
/// image names choose endpoints, so the maps are bounded.
const MAX_TRACKED_ENDPOINTS: usize = 1024;

pub(super) struct Places {
    /// One permit per registry operation in flight. tokio's semaphore is fair (FIFO), and a
    /// review asks for only a few permits at a time, so a review with thousands of images
    /// queues behind, not in front of, the reviews that come after it.
    process: Semaphore,
    /// One semaphore per registry endpoint, a quarter of `process` each: a registry that
    /// stalls (unroutable, or answering 429 just inside the deadline) holds at most that share
    /// of the process-wide places, and the other registries keep the rest.
    per_endpoint: Mutex<HashMap<String, Arc<Semaphore>>>,
    per_endpoint_limit: usize,
    /// Endpoints whose last operation timed out, and until when they are answered at once.
    stalled: Mutex<HashMap<String, Instant>>,
    stalled_for: Duration,
}

/// Places held by one registry operation: one at its endpoint, one in the process.
pub(super) struct Turn<'a> {
    _endpoint: OwnedSemaphorePermit,
    _process: SemaphorePermit<'a>,
}

impl Places {
    /// `limit` operations in the process; an endpoint that timed out is skipped for
    /// `stalled_for`.
    pub fn new(limit: usize, stalled_for: Duration) -> Self {
        Places {
            process: Semaphore::new(limit),
            per_endpoint: Mutex::new(HashMap::new()),
            per_endpoint_limit: (limit / 4).max(1),
            stalled: Mutex::new(HashMap::new()),
            stalled_for,
        }
    }

    /// Waits for a turn at `endpoint`, then in the process; both are held for the whole
    /// operation (auth round trips, 429 waits and the body).
    pub async fn turn(&self, endpoint: &str) -> Result<Turn<'_>, AcquireError> {
        let at_endpoint = self.endpoint_semaphore(endpoint).acquire_owned().await?;
        let in_process = self.process.acquire().await?;
        Ok(Turn {
            _endpoint: at_endpoint,
            _process: in_process,
        })
    }

    fn endpoint_semaphore(&self, endpoint: &str) -> Arc<Semaphore> {
        let mut map = self.per_endpoint.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_TRACKED_ENDPOINTS && !map.contains_key(endpoint) {
            let idle = self.per_endpoint_limit;
            map.retain(|_, s| s.available_permits() < idle);
        }
        map.entry(endpoint.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_endpoint_limit)))
            .clone()
    }

    /// How long `endpoint` is still answered as stalled, if it is.
    pub fn stalled_for(&self, endpoint: &str) -> Option<Duration> {
        let stalled = self.stalled.lock().unwrap_or_else(|e| e.into_inner());
        let left = stalled.get(endpoint)?.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    /// `endpoint`'s operation just timed out.
    pub fn timed_out(&self, endpoint: &str) {
        let Some(until) = Instant::now().checked_add(self.stalled_for) else {
            return;
        };
        let mut stalled = self.stalled.lock().unwrap_or_else(|e| e.into_inner());
        if stalled.len() >= MAX_TRACKED_ENDPOINTS {
            let now = Instant::now();
            stalled.retain(|_, until| *until > now);
        }
        stalled.insert(endpoint.to_string(), until);
    }
}
