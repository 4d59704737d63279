//! Checks a [`SiteState`] and indexes its circuit tree by position, once per step.

use super::model::{DlmError, SiteState, Supply};
use std::collections::HashMap;

/// The checked site: circuit tree by position and each charger's circuit position.
#[derive(Debug)]
pub(crate) struct Indexed {
    /// Parent position of each circuit.
    pub parent: Vec<Option<usize>>,
    /// Circuit positions, every parent before its children.
    pub order: Vec<usize>,
    /// Circuit position of each charger.
    pub charger_circuit: Vec<usize>,
}

fn finite(field: impl FnOnce() -> String, v: f64) -> Result<(), DlmError> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(DlmError::invalid(field(), "must be a finite number"))
    }
}

fn non_negative(field: impl FnOnce() -> String, v: f64) -> Result<(), DlmError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(DlmError::invalid(field(), "must be a number >= 0"))
    }
}

/// Validates every field the optimiser relies on and builds the index. `ids_known_unique`: the
/// charger ids are those of a state already checked (skips the duplicate check). `hint`: each
/// charger's circuit position in the previous state, tried before the lookup by id (chargers rarely
/// move, and a string compare is cheaper than hashing at every step).
pub(crate) fn index(state: &SiteState, ids_known_unique: bool, hint: &[usize]) -> Result<Indexed, DlmError> {
    let n = state.circuits.len();
    let mut pos: HashMap<&str, usize> = HashMap::with_capacity(n);
    for (i, c) in state.circuits.iter().enumerate() {
        if pos.insert(c.id.as_str(), i).is_some() {
            return Err(DlmError::Duplicate {
                field: format!("circuits[{i}].id"),
                id: c.id.clone(),
            });
        }
        for p in 0..3 {
            non_negative(|| format!("circuits[{i}].max_current[{p}]"), c.max_current[p])?;
            if let Some(u) = c.unmanaged_current {
                finite(|| format!("circuits[{i}].unmanaged_current[{p}]"), u[p])?;
            }
            if let Some(s) = c.safe_current {
                non_negative(|| format!("circuits[{i}].safe_current[{p}]"), s[p])?;
            }
        }
        if let Some(w) = c.max_power_w {
            non_negative(|| format!("circuits[{i}].max_power_w"), w)?;
        }
    }
    let mut parent = Vec::with_capacity(n);
    for (i, c) in state.circuits.iter().enumerate() {
        parent.push(match &c.parent {
            None => None,
            Some(p) => match pos.get(p.as_str()) {
                Some(&j) => Some(j),
                None => {
                    return Err(DlmError::UnknownCircuit {
                        field: format!("circuits[{i}].parent"),
                        id: p.clone(),
                    });
                }
            },
        });
    }
    // Depth of every node; a walk that meets its own stamp has found a cycle.
    let mut depth: Vec<Option<usize>> = vec![None; n];
    let mut stamp = vec![usize::MAX; n];
    let mut path = Vec::new();
    for start in 0..n {
        path.clear();
        let mut cur = start;
        let base = loop {
            if let Some(d) = depth[cur] {
                break d + 1;
            }
            if stamp[cur] == start {
                return Err(DlmError::Cycle {
                    field: format!("circuits[{cur}].parent"),
                    id: state.circuits[cur].id.clone(),
                });
            }
            stamp[cur] = start;
            path.push(cur);
            match parent[cur] {
                Some(p) => cur = p,
                None => break 0,
            }
        };
        for (k, &node) in path.iter().rev().enumerate() {
            depth[node] = Some(base + k);
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (depth[i].unwrap_or(0), i));

    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut charger_circuit = Vec::with_capacity(state.chargers.len());
    for (i, ch) in state.chargers.iter().enumerate() {
        if !ids_known_unique && seen.insert(ch.id.as_str(), i).is_some() {
            return Err(DlmError::Duplicate {
                field: format!("chargers[{i}].id"),
                id: ch.id.clone(),
            });
        }
        let hinted = hint
            .get(i)
            .copied()
            .filter(|&c| state.circuits.get(c).is_some_and(|circ| circ.id == ch.circuit));
        match hinted.or_else(|| pos.get(ch.circuit.as_str()).copied()) {
            Some(c) => charger_circuit.push(c),
            None => {
                return Err(DlmError::UnknownCircuit {
                    field: format!("chargers[{i}].circuit"),
                    id: ch.circuit.clone(),
                });
            }
        }
        if ch.phases != 1 && ch.phases != 3 {
            return Err(DlmError::invalid(
                format!("chargers[{i}].phases"),
                format!("must be 1 or 3, not {}", ch.phases),
            ));
        }
        if ch.supply == Supply::Dc && ch.phases != 3 {
            return Err(DlmError::invalid(
                format!("chargers[{i}].phases"),
                "a DC charger is a 3-phase load",
            ));
        }
        non_negative(|| format!("chargers[{i}].min_current"), ch.min_current)?;
        non_negative(|| format!("chargers[{i}].max_current"), ch.max_current)?;
        if ch.min_current > ch.max_current {
            return Err(DlmError::invalid(
                format!("chargers[{i}].min_current"),
                format!("{} is above max_current {}", ch.min_current, ch.max_current),
            ));
        }
        if let Some(w) = ch.max_power_w {
            non_negative(|| format!("chargers[{i}].max_power_w"), w)?;
        }
        if let Some(f) = ch.fallback_current {
            non_negative(|| format!("chargers[{i}].fallback_current"), f)?;
        }
        if let Some(d) = ch.apply_delay_s {
            non_negative(|| format!("chargers[{i}].apply_delay_s"), d)?;
        }
        if let Some(s) = &ch.session {
            for p in 0..3 {
                finite(
                    || format!("chargers[{i}].session.measured_current[{p}]"),
                    s.measured_current[p],
                )?;
            }
            if let Some(o) = s.offered_current {
                finite(|| format!("chargers[{i}].session.offered_current"), o)?;
            }
            if let Some(w) = s.measured_power_w {
                finite(|| format!("chargers[{i}].session.measured_power_w"), w)?;
            }
        }
    }
    for (i, slot) in state.prices.iter().enumerate() {
        if slot.end <= slot.start {
            return Err(DlmError::invalid(format!("prices[{i}].end"), "must be after start"));
        }
    }
    Ok(Indexed {
        parent,
        order,
        charger_circuit,
    })
}
