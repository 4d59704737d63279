//! A car's battery and what it will draw: integer mA / W / mWh, no clock.

use super::plan::Visit;

/// Nominal AC phase voltage and DC battery voltage.
pub const AC_VOLTS: i64 = 230;
const DC_VOLTS: i64 = 400;
/// IEC 61851: below 6 A an AC car cannot charge at all.
pub const AC_MIN_MA: i64 = 6_000;
/// Share of metered energy that reaches the battery (charger and cable losses).
const EFFICIENCY_PERCENT: u64 = 92;

#[derive(Debug, Clone)]
pub struct Car {
    battery_mwh: u64,
    stored_mwh: u64,
    ac_max_ma: i64,
    ac_phases: u8,
    dc_max_w: i64,
}

/// What the car draws this instant, at the charger's terminals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Draw {
    /// mA on the charger's L1, L2, L3 (DC: the DC current in `[0]`).
    pub current_ma: [i64; 3],
    pub power_w: i64,
}

impl Car {
    pub fn new(v: &Visit) -> Car {
        let battery_mwh = v.battery_wh * 1000;
        Car {
            battery_mwh,
            stored_mwh: battery_mwh * v.arrival_soc_permille as u64 / 1000,
            ac_max_ma: v.ac_max_current_a as i64 * 1000,
            ac_phases: v.ac_phases,
            dc_max_w: v.dc_max_kw as i64 * 1000,
        }
    }

    pub fn soc_permille(&self) -> u32 {
        (self.stored_mwh * 1000 / self.battery_mwh.max(1)) as u32
    }

    pub fn full(&self) -> bool {
        self.stored_mwh >= self.battery_mwh
    }

    /// Lithium cells take less current as they fill: full rate to 80 %, then
    /// falling linearly to a tenth of it at 100 %.
    fn taper(&self, max: i64, knee_permille: i64) -> i64 {
        let soc = self.soc_permille() as i64;
        if self.full() {
            0
        } else if soc <= knee_permille {
            max
        } else {
            let left = 1000 - soc;
            let span = 1000 - knee_permille;
            (max / 10).max(max * left / span)
        }
    }

    /// Draw on an AC charger offering `offered_ma` per phase on `phases`
    /// wired phases. A single-phase car (or charger) loads L1 only.
    pub fn ac_draw(&self, offered_ma: i64, phases: u8) -> Draw {
        let want = self.taper(self.ac_max_ma, 800);
        let ma = want.min(offered_ma);
        if ma < AC_MIN_MA {
            return Draw::default();
        }
        let n = if phases == 1 || self.ac_phases == 1 { 1 } else { 3 };
        let mut current_ma = [0; 3];
        current_ma[..n].fill(ma);
        Draw {
            current_ma,
            power_w: AC_VOLTS * ma * n as i64 / 1000,
        }
    }

    /// Draw on a DC charger offering `offered_w`. DC tapers earlier than AC.
    pub fn dc_draw(&self, offered_w: i64) -> Draw {
        let w = self.taper(self.dc_max_w, 500).min(offered_w).max(0);
        Draw {
            current_ma: [w * 1000 / DC_VOLTS, 0, 0],
            power_w: w,
        }
    }

    /// Take `mwh` of metered energy into the battery.
    pub fn absorb(&mut self, mwh: u64) {
        self.stored_mwh = (self.stored_mwh + mwh * EFFICIENCY_PERCENT / 100).min(self.battery_mwh);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::scenario::TokenKind;

    fn visit(soc: u32, phases: u8) -> Visit {
        Visit {
            wait_s: 0,
            dwell_s: 100,
            car: "test".into(),
            battery_wh: 50_000,
            arrival_soc_permille: soc,
            ac_max_current_a: 16,
            ac_phases: phases,
            dc_max_kw: 100,
            token: "T".into(),
            token_kind: TokenKind::Rfid,
            iso15118: false,
        }
    }

    #[test]
    fn never_draws_more_than_offered_and_pauses_below_six_amps() {
        let car = Car::new(&visit(200, 3));
        assert_eq!(car.ac_draw(10_000, 3).current_ma, [10_000; 3]);
        assert_eq!(car.ac_draw(32_000, 3).current_ma, [16_000; 3]);
        assert_eq!(car.ac_draw(5_999, 3), Draw::default());
        assert_eq!(car.ac_draw(10_000, 3).power_w, 6_900);
    }

    #[test]
    fn single_phase_car_loads_l1_only() {
        let car = Car::new(&visit(200, 1));
        assert_eq!(car.ac_draw(16_000, 3).current_ma, [16_000, 0, 0]);
        let three = Car::new(&visit(200, 3));
        assert_eq!(three.ac_draw(16_000, 1).current_ma, [16_000, 0, 0]);
    }

    #[test]
    fn tapers_near_full_and_stops_when_full() {
        let mut car = Car::new(&visit(900, 3));
        let tapered = car.ac_draw(16_000, 3).current_ma[0];
        assert!((6_000..16_000).contains(&tapered), "{tapered}");
        car.absorb(1_000_000_000);
        assert!(car.full());
        assert_eq!(car.ac_draw(16_000, 3), Draw::default());
        assert_eq!(car.dc_draw(50_000), Draw::default());
    }
}
