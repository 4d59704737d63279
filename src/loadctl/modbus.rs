//! Modbus TCP meters: one polling task per bound circuit, started and
//! stopped as bindings change. A meter that cannot be read simply stops
//! sending readings; the loop then treats it as silent.

use super::Signal;
use crate::domain::circuit::ModbusMeter;
use crate::server::Shared;
use chrono::Utc;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_modbus::client::{Context, Reader, tcp};
use tokio_modbus::slave::Slave;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Default)]
pub struct Pollers {
    running: HashMap<String, (ModbusMeter, JoinHandle<()>)>,
}

impl Pollers {
    /// Make the running pollers match `wanted` (circuit → meter).
    pub fn sync(&mut self, shared: &Arc<Shared>, wanted: HashMap<String, ModbusMeter>) {
        self.running.retain(|circuit, (meter, task)| {
            let keep = wanted.get(circuit) == Some(meter);
            if !keep {
                task.abort();
            }
            keep
        });
        for (circuit, meter) in wanted {
            if let std::collections::hash_map::Entry::Vacant(slot) = self.running.entry(circuit) {
                let task = tokio::spawn(poll(shared.clone(), slot.key().clone(), meter.clone()));
                slot.insert((meter, task));
            }
        }
    }
}

impl Drop for Pollers {
    fn drop(&mut self) {
        for (_, task) in self.running.values() {
            task.abort();
        }
    }
}

async fn poll(shared: Arc<Shared>, circuit: String, meter: ModbusMeter) {
    let period = Duration::from_millis(u64::from(meter.poll_ms));
    let mut failing = false;
    loop {
        let Err(e) = read_loop(&shared, &circuit, &meter, period).await;
        if !failing {
            tracing::warn!(circuit, address = meter.address, "modbus meter unreadable: {e}");
        }
        failing = true;
        tokio::time::sleep(period.max(Duration::from_secs(2))).await;
    }
}

async fn read_loop(
    shared: &Shared,
    circuit: &str,
    meter: &ModbusMeter,
    period: Duration,
) -> anyhow::Result<Infallible> {
    let addr = meter.address.parse()?;
    let mut ctx: Context = tokio::time::timeout(CONNECT_TIMEOUT, tcp::connect_slave(addr, Slave(meter.unit))).await??;
    let width = meter.format.registers();
    let count = meter.stride * 2 + width;
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        let regs = tokio::time::timeout(CONNECT_TIMEOUT, ctx.read_input_registers(meter.register, count)).await???;
        let mut current = [0.0; 3];
        for (i, c) in current.iter_mut().enumerate() {
            let at = usize::from(meter.stride) * i;
            *c = regs
                .get(at..at + usize::from(width))
                .and_then(|r| meter.format.decode(r))
                .ok_or_else(|| anyhow::anyhow!("register {} of phase L{} is not a current", at, i + 1))?;
        }
        shared.load.signal(Signal::CircuitMeter {
            circuit: circuit.to_string(),
            current,
            t: Utc::now(),
        });
    }
}
