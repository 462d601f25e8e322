//! The server's metrics page scraped while a run goes, for
//! [`ServerMetrics`](super::server_metrics::ServerMetrics).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::api::Workload;

/// The server's metrics page scraped while a run goes: once when it starts, every
/// [`SCRAPE_INTERVAL`] during it (in a task of its own), once after it.
pub(crate) struct Scraping {
    pages: Arc<std::sync::Mutex<Vec<(Duration, super::server_metrics::Page)>>>,
    done: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    started: Instant,
    warmup: Duration,
}

/// How often the server's metrics page is scraped during a run.
pub const SCRAPE_INTERVAL: Duration = Duration::from_secs(1);

impl Scraping {
    /// Scrapes once; `None` when the workload's server has no page.
    pub(crate) async fn start(workload: &Arc<dyn Workload>, warmup: Duration) -> Option<Self> {
        let first = super::server_metrics::parse(&workload.scrape().await?);
        let started = Instant::now();
        let pages = Arc::new(std::sync::Mutex::new(vec![(Duration::ZERO, first)]));
        let done = CancellationToken::new();
        let task = tokio::spawn({
            let (workload, pages, done) = (workload.clone(), pages.clone(), done.clone());
            async move {
                let mut tick = tokio::time::interval(SCRAPE_INTERVAL);
                tick.tick().await;
                loop {
                    tokio::select! {
                        () = done.cancelled() => break,
                        _ = tick.tick() => {}
                    }
                    if let Some(text) = workload.scrape().await {
                        let page = super::server_metrics::parse(&text);
                        pages
                            .lock()
                            .expect("pages lock")
                            .push((started.elapsed(), page));
                    }
                }
            }
        });
        Some(Self {
            pages,
            done,
            task,
            started,
            warmup,
        })
    }

    /// Scrapes a last time and reduces the pages from the end of the warm-up on.
    pub(crate) async fn finish(
        self,
        workload: &dyn Workload,
    ) -> Option<super::server_metrics::ServerMetrics> {
        self.done.cancel();
        let _ = self.task.await;
        let last = workload
            .scrape()
            .await
            .map(|t| super::server_metrics::parse(&t));
        let mut pages = std::mem::take(&mut *self.pages.lock().expect("pages lock"));
        if let Some(last) = last {
            pages.push((self.started.elapsed(), last));
        }
        // The page before the measured period: the last one scraped by the warm-up's end.
        let from = pages
            .iter()
            .rposition(|(at, _)| *at <= self.warmup)
            .unwrap_or(0);
        let pages: Vec<_> = pages.into_iter().skip(from).map(|(_, p)| p).collect();
        super::server_metrics::ServerMetrics::of(&pages)
    }
}
