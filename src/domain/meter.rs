//! Meter value normalisation: any measurand, unit, multiplier, phase and
//! context becomes a `Sample` in integer milli-units of a base unit.

use super::model::{Label, Sample, SignedMeter};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::borrow::Cow;
use std::str::FromStr;

pub const ENERGY_IMPORT: &str = "Energy.Active.Import.Register";

/// A sampled value as either OCPP version delivers it, before
/// normalisation, borrowing from the message it came in.
#[derive(Debug, Clone)]
pub struct RawSample<'a> {
    pub value: Cow<'a, str>,
    pub measurand: Option<&'a str>,
    pub phase: Option<&'a str>,
    pub context: Option<&'a str>,
    pub location: Option<&'a str>,
    pub unit: Option<&'a str>,
    /// 2.0.1 `unitOfMeasure.multiplier` (power of ten).
    pub multiplier: i32,
    /// 1.6 `format == SignedData`: `value` is the signed blob itself.
    pub value_is_signed: bool,
    pub signed: Option<SignedMeter>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{field}: {reason}")]
pub struct SampleError {
    pub field: String,
    pub reason: String,
}

/// Normalise one sampled value. `index` names the value in error messages
/// (built only when there is one: a message carries dozens of values).
pub fn normalise(t: DateTime<Utc>, s: RawSample, index: impl Fn() -> String) -> Result<Sample, SampleError> {
    let measurand = s.measurand.unwrap_or(ENERGY_IMPORT);
    let unit_in = s.unit.unwrap_or_else(|| default_unit(measurand));
    let (unit, scale) = base_unit(unit_in);
    let value_milli = if s.value_is_signed {
        0
    } else if let Some(m) = plain_milli(&s.value, s.multiplier, scale) {
        m
    } else {
        let v = parse_number(&s.value).ok_or_else(|| SampleError {
            field: format!("{}.value", index()),
            reason: format!("{:?} is not a number", s.value),
        })?;
        let out_of_range = || SampleError {
            field: format!("{}.value", index()),
            reason: format!("{:?} (multiplier {}) is out of range", s.value, s.multiplier),
        };
        let factor = pow10(s.multiplier)
            .and_then(|p| p.checked_mul(Decimal::from(scale * 1000)))
            .ok_or_else(out_of_range)?;
        v.checked_mul(factor)
            .ok_or_else(out_of_range)?
            .round()
            .try_into()
            .map_err(|_| out_of_range())?
    };
    let signed = if s.value_is_signed {
        Some(SignedMeter {
            data: s.value.into_owned(),
            signing_method: None,
            encoding_method: None,
            public_key: None,
        })
    } else {
        s.signed
    };
    Ok(Sample {
        t,
        measurand: label(measurand),
        phase: s.phase.map(label),
        context: label(s.context.unwrap_or("Sample.Periodic")),
        location: label(s.location.unwrap_or("Outlet")),
        unit: label(unit),
        value_milli,
        signed,
    })
}

/// Every word the OCPP schemas allow in a sampled value's measurand,
/// phase, context, location and unit. A message carries dozens of these;
/// pointing at one of them costs nothing where a copy costs an allocation.
macro_rules! labels {
    ($($word:literal),* $(,)?) => {
        fn label(s: &str) -> Label {
            match s {
                $($word => Cow::Borrowed($word),)*
                other => Cow::Owned(other.to_string()),
            }
        }
    };
}

labels!(
    "Current.Export",
    "Current.Import",
    "Current.Offered",
    "Energy.Active.Export.Register",
    "Energy.Active.Import.Register",
    "Energy.Reactive.Export.Register",
    "Energy.Reactive.Import.Register",
    "Energy.Active.Export.Interval",
    "Energy.Active.Import.Interval",
    "Energy.Active.Net",
    "Energy.Reactive.Export.Interval",
    "Energy.Reactive.Import.Interval",
    "Energy.Reactive.Net",
    "Energy.Apparent.Net",
    "Energy.Apparent.Import",
    "Energy.Apparent.Export",
    "Frequency",
    "Power.Active.Export",
    "Power.Active.Import",
    "Power.Factor",
    "Power.Offered",
    "Power.Reactive.Export",
    "Power.Reactive.Import",
    "SoC",
    "Voltage",
    "Temperature",
    "RPM",
    "L1",
    "L2",
    "L3",
    "N",
    "L1-N",
    "L2-N",
    "L3-N",
    "L1-L2",
    "L2-L3",
    "L3-L1",
    "Interruption.Begin",
    "Interruption.End",
    "Other",
    "Sample.Clock",
    "Sample.Periodic",
    "Transaction.Begin",
    "Transaction.End",
    "Trigger",
    "Body",
    "Cable",
    "EV",
    "Inlet",
    "Outlet",
    "Wh",
    "varh",
    "W",
    "VA",
    "var",
    "A",
    "V",
    "K",
    "Celcius",
    "Celsius",
    "Fahrenheit",
    "Percent",
    "Hertz",
    "Hz",
    "",
);

/// `value` × 10^`multiplier` × `scale` in thousandths, for the values
/// nearly every meter sends (an integer with at most three decimals, no
/// multiplier), without the decimal arithmetic of the general path, which
/// cost more than the rest of a sampled value. `None`: take that path.
fn plain_milli(value: &str, multiplier: i32, scale: i64) -> Option<i64> {
    if multiplier != 0 {
        return None;
    }
    let v = value.trim();
    let (negative, digits) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() || int.len() > 15 || frac.len() > 3 {
        return None;
    }
    let mut milli: i64 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        if !b.is_ascii_digit() {
            return None;
        }
        milli = milli * 10 + i64::from(b - b'0');
    }
    for _ in frac.len()..3 {
        milli *= 10;
    }
    let milli = milli.checked_mul(scale)?;
    Some(if negative { -milli } else { milli })
}

fn parse_number(s: &str) -> Option<Decimal> {
    let s = s.trim();
    Decimal::from_str(s).ok().or_else(|| Decimal::from_scientific(s).ok())
}

/// 10^exp; None when it does not fit a Decimal (a multiplier no meter uses).
fn pow10(exp: i32) -> Option<Decimal> {
    let mut d = Decimal::ONE;
    let ten = Decimal::from(10);
    for _ in 0..exp.unsigned_abs().min(30) {
        d = if exp >= 0 {
            d.checked_mul(ten)?
        } else {
            d.checked_div(ten)?
        };
    }
    Some(d)
}

/// OCPP defaults the unit to Wh whatever the measurand; nobody means Wh for
/// a current, so the default follows the measurand.
fn default_unit(measurand: &str) -> &'static str {
    match measurand.split('.').next().unwrap_or("") {
        "Energy" if measurand.contains("Reactive") => "varh",
        "Energy" => "Wh",
        "Power" if measurand.starts_with("Power.Factor") => "",
        "Power" if measurand.contains("Reactive") => "var",
        "Power" => "W",
        "Current" => "A",
        "Voltage" => "V",
        "SoC" => "Percent",
        "Frequency" => "Hz",
        "Temperature" => "Celsius",
        "RPM" => "RPM",
        _ => "",
    }
}

/// Map a unit to its base unit and the factor to get there.
fn base_unit(unit: &str) -> (&str, i64) {
    match unit {
        "kWh" => ("Wh", 1000),
        "kW" => ("W", 1000),
        "kvarh" => ("varh", 1000),
        "kvar" => ("var", 1000),
        "kVA" => ("VA", 1000),
        other => (other, 1),
    }
}

/// The total (phase-less) import register among `samples`, in Wh.
pub fn energy_register_wh(samples: &[Sample]) -> Option<i64> {
    samples
        .iter()
        .filter(|s| s.measurand == ENERGY_IMPORT && s.signed.is_none() && s.unit == "Wh")
        .filter(|s| s.phase.is_none() || s.phase.as_deref() == Some("N"))
        .filter(|s| s.location != "EV")
        .map(|s| s.value_milli.div_euclid(1000))
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw<'a>(value: &'a str, measurand: Option<&'a str>, unit: Option<&'a str>, mult: i32) -> RawSample<'a> {
        RawSample {
            value: value.into(),
            measurand,
            phase: None,
            context: None,
            location: None,
            unit,
            multiplier: mult,
            value_is_signed: false,
            signed: None,
        }
    }

    /// The general path, for comparison with the plain one.
    fn decimal_milli(value: &str, multiplier: i32, scale: i64) -> Option<i64> {
        let factor = pow10(multiplier)?.checked_mul(Decimal::from(scale * 1000))?;
        parse_number(value)?.checked_mul(factor)?.round().try_into().ok()
    }

    proptest::proptest! {
        #[test]
        fn plain_values_take_the_short_path_to_the_same_result(
            int in 0u64..1_000_000_000_000_000,
            frac in proptest::option::of("[0-9]{0,3}"),
            negative: bool,
            kilo: bool,
        ) {
            let text = format!("{}{int}{}", if negative { "-" } else { "" }, frac.map(|f| format!(".{f}")).unwrap_or_default());
            let scale = if kilo { 1000 } else { 1 };
            let plain = plain_milli(&text, 0, scale);
            proptest::prop_assert!(plain.is_some() || int >= 1_000_000_000_000_000 / 1000 && kilo, "{text}");
            if let Some(m) = plain {
                proptest::prop_assert_eq!(Some(m), decimal_milli(&text, 0, scale), "{}", text);
            }
        }
    }

    #[test]
    fn anything_else_goes_the_general_way() {
        for text in [
            "1.2345",
            "1e3",
            "+5",
            "",
            ".5",
            "5.",
            "1,5",
            "--1",
            " 7 ",
            "12345678901234567",
        ] {
            let plain = plain_milli(text, 0, 1);
            assert!(
                plain.is_none() || plain == decimal_milli(text, 0, 1),
                "{text:?}: {plain:?}"
            );
        }
        assert_eq!(plain_milli(" 7 ", 0, 1), Some(7000));
        assert_eq!(plain_milli("5.", 0, 1), Some(5000));
        assert_eq!(plain_milli("16.1", 0, 1), Some(16_100));
        assert_eq!(plain_milli("-0.5", 0, 1000), Some(-500_000));
        assert_eq!(plain_milli("15", 3, 1), None, "a multiplier goes the general way");
        assert_eq!(plain_milli("1.2345", 0, 1), None);
    }

    #[test]
    fn known_words_point_at_the_program_and_a_vendor_word_is_kept() {
        let mut r = raw("1", Some("Current.Import"), None, 0);
        r.phase = Some("L2");
        r.location = Some("Outlet-Rear");
        let s = normalise(Utc::now(), r, || "v".into()).unwrap();
        assert!(matches!(s.measurand, Cow::Borrowed("Current.Import")));
        assert!(matches!(s.phase, Some(Cow::Borrowed("L2"))));
        assert!(matches!(s.context, Cow::Borrowed("Sample.Periodic")));
        assert!(matches!(&s.location, Cow::Owned(l) if l == "Outlet-Rear"));
    }

    #[test]
    fn units_and_multipliers_normalise_to_milli_base_units() {
        let t = Utc::now();
        let s = normalise(t, raw("12.3456", None, Some("kWh"), 0), || "v".into()).unwrap();
        assert_eq!((s.unit.as_ref(), s.value_milli), ("Wh", 12_345_600));
        let s = normalise(t, raw("7.4", Some("Power.Active.Import"), Some("kW"), 0), || "v".into()).unwrap();
        assert_eq!((s.unit.as_ref(), s.value_milli), ("W", 7_400_000));
        let s = normalise(t, raw("16", Some("Current.Import"), None, 0), || "v".into()).unwrap();
        assert_eq!((s.unit.as_ref(), s.value_milli), ("A", 16_000));
        let s = normalise(t, raw("15", None, Some("Wh"), 3), || "v".into()).unwrap();
        assert_eq!(s.value_milli, 15_000_000, "2.0.1 multiplier 3 means kWh");
        let s = normalise(t, raw("1.5e3", None, None, 0), || "v".into()).unwrap();
        assert_eq!(s.value_milli, 1_500_000);
        assert_eq!(energy_register_wh(&[s]), Some(1500));
    }

    #[test]
    fn garbage_values_name_the_field() {
        let e = normalise(Utc::now(), raw("12,5", None, None, 0), || {
            "meterValue[0].sampledValue[1]".into()
        })
        .unwrap_err();
        assert_eq!(e.field, "meterValue[0].sampledValue[1].value");
    }

    #[test]
    fn absurd_values_are_refused_not_panicked_on() {
        let e = normalise(Utc::now(), raw("79228162514264337593543950335", None, None, 0), || {
            "v".into()
        })
        .unwrap_err();
        assert_eq!(e.field, "v.value");
        assert!(normalise(Utc::now(), raw("1", None, None, 9), || "v".into()).is_ok());
        assert!(normalise(Utc::now(), raw("1", None, None, 40), || "v".into()).is_err());
        assert!(normalise(Utc::now(), raw("1e300", None, None, 0), || "v".into()).is_err());
    }

    #[test]
    fn signed_values_keep_the_blob() {
        let mut r = raw("OCMF|{}|{}", None, None, 0);
        r.value_is_signed = true;
        let s = normalise(Utc::now(), r, || "v".into()).unwrap();
        assert_eq!(s.signed.unwrap().data, "OCMF|{}|{}");
        assert_eq!(s.value_milli, 0);
    }
}
