//! `voltyard simulate`: virtual charge points with virtual cars speaking real
//! OCPP-J (1.6 and 2.0.1) to any CSMS.
//!
//! `scenario` describes a site, `plan` turns it and a seed into chargers and
//! car visits (deterministic), `charger` is one charge point's state machine
//! (cars in `car`, limits from `profiles`, configuration in `settings`,
//! Eichrecht records from `ocmf`, the server's CALLs in `calls`), and `link`
//! puts it on a WebSocket. Nothing here knows the server's internals: it
//! only shares the OCPP framing and schemas, so it tests other CSMSs too.

mod calls;
mod car;
mod charger;
mod device;
mod http;
mod link;
mod ocmf;
mod ops;
mod plan;
mod pnc;
mod profiles;
mod reports;
pub mod scenario;
mod security;
mod settings;
mod stats;
mod transfer;
mod visit;

pub use plan::{ChargerPlan, Plan, Visits, tokens};
pub use pnc::emaid as pnc_emaid;
pub use scenario::Scenario;
pub use security::Credentials;
pub use stats::{Stats, Summary};

use charger::{Charger, Clock};
use chrono::Utc;
use link::LinkOptions;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub struct Options {
    /// `ws://host:port/ocpp`: each charger appends `/{id}`.
    pub url: String,
    pub scenario: Scenario,
    pub seed: u64,
    pub validate: bool,
    /// New connections per second while the chargers come up.
    pub connect_rate: u32,
    pub call_timeout: Duration,
}

/// A running simulation in the current tokio runtime.
pub struct Simulation {
    stats: Arc<Stats>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    started: Instant,
}

impl Simulation {
    pub fn start(opts: Options) -> Simulation {
        Simulation::start_with(opts, Credentials::default())
    }

    /// Start chargers that authenticate with `credentials` (security profiles 1–3).
    pub fn start_with(opts: Options, credentials: Credentials) -> Simulation {
        let stats = Arc::new(Stats::default());
        let (stop, stop_rx) = watch::channel(false);
        let plan = Plan::new(&opts.scenario, opts.seed);
        let link = Arc::new(LinkOptions {
            url: opts.url,
            validate: opts.validate,
            call_timeout: opts.call_timeout,
            credentials,
        });
        let clock = Clock {
            now: Instant::now(),
            wall: Utc::now(),
        };
        let rate = opts.connect_rate.max(1) as u64;
        let tasks = plan
            .chargers
            .into_iter()
            .enumerate()
            .map(|(n, p)| {
                let ch = Charger::new(p, &opts.scenario, stats.clone(), clock);
                let after = Duration::from_micros(n as u64 * 1_000_000 / rate);
                tokio::spawn(link::run(ch, link.clone(), after, stop_rx.clone()))
            })
            .collect();
        Simulation {
            stats,
            stop,
            tasks,
            started: Instant::now(),
        }
    }

    pub fn summary(&self) -> Summary {
        self.stats
            .snapshot(self.tasks.len(), self.started.elapsed().as_secs_f64())
    }

    /// Close every connection (WebSocket close) and wait for the chargers.
    pub async fn stop(self) -> Summary {
        let _ = self.stop.send(true);
        let n = self.tasks.len();
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        self.stats.snapshot(n, self.started.elapsed().as_secs_f64())
    }
}
