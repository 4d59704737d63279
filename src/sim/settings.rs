//! A virtual charger's configuration: 1.6 configuration keys and 2.0.1
//! device-model variables are one table with a name in each dialect.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Bool,
    Text,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    ReadWrite,
    /// Secrets: settable, never reported.
    WriteOnly,
}

#[derive(Debug, Clone)]
pub struct Setting {
    pub key: String,
    pub component: &'static str,
    pub variable: &'static str,
    pub kind: Kind,
    pub access: Access,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetOutcome {
    Accepted,
    Rejected,
    Unknown,
}

pub struct Settings {
    list: Vec<Setting>,
}

/// Names used by the charger logic.
pub const HEARTBEAT: &str = "HeartbeatInterval";
pub const METER_INTERVAL: &str = "MeterValueSampleInterval";
pub const AUTHORIZE_REMOTE: &str = "AuthorizeRemoteTxRequests";

impl Settings {
    pub fn new(connectors: u32, meter_interval_s: u32, rotation: &str, public_keys: &[String]) -> Settings {
        use Access::*;
        use Kind::*;
        let rot = match rotation {
            "L2L3L1" => "STR",
            "L3L1L2" => "TRS",
            _ => "RST",
        };
        let rotations = (0..=connectors)
            .map(|c| format!("{c}.{rot}"))
            .collect::<Vec<_>>()
            .join(",");
        let s = |key: &str, component, variable, kind, access, value: String| Setting {
            key: key.to_string(),
            component,
            variable,
            kind,
            access,
            value,
        };
        let mut list = vec![
            s(
                HEARTBEAT,
                "OCPPCommCtrlr",
                "HeartbeatInterval",
                Int,
                ReadWrite,
                "300".into(),
            ),
            s(
                METER_INTERVAL,
                "SampledDataCtrlr",
                "TxUpdatedInterval",
                Int,
                ReadWrite,
                meter_interval_s.to_string(),
            ),
            s(
                "MeterValuesSampledData",
                "SampledDataCtrlr",
                "TxUpdatedMeasurands",
                Text,
                ReadWrite,
                "Energy.Active.Import.Register,Power.Active.Import,Current.Import,Current.Offered,SoC".into(),
            ),
            s(
                "ConnectionTimeOut",
                "TxCtrlr",
                "EVConnectionTimeOut",
                Int,
                ReadWrite,
                "60".into(),
            ),
            s(
                "StopTransactionOnEVSideDisconnect",
                "TxCtrlr",
                "StopTxOnEVSideDisconnect",
                Bool,
                ReadOnly,
                "true".into(),
            ),
            s(
                "StopTransactionOnInvalidId",
                "TxCtrlr",
                "StopTxOnInvalidId",
                Bool,
                ReadWrite,
                "true".into(),
            ),
            s(
                AUTHORIZE_REMOTE,
                "AuthCtrlr",
                "AuthorizeRemoteStart",
                Bool,
                ReadWrite,
                "false".into(),
            ),
            s(
                "LocalAuthorizeOffline",
                "AuthCtrlr",
                "LocalAuthorizeOffline",
                Bool,
                ReadWrite,
                "true".into(),
            ),
            s(
                "LocalPreAuthorize",
                "AuthCtrlr",
                "LocalPreAuthorize",
                Bool,
                ReadWrite,
                "false".into(),
            ),
            s(
                "NumberOfConnectors",
                "EVSE",
                "Count",
                Int,
                ReadOnly,
                connectors.to_string(),
            ),
            s(
                "ConnectorPhaseRotation",
                "EVSE",
                "PhaseRotation",
                Text,
                ReadOnly,
                rotations,
            ),
            s(
                "SupportedFeatureProfiles",
                "OCPPCommCtrlr",
                "SupportedFeatureProfiles",
                Text,
                ReadOnly,
                "Core,LocalAuthListManagement,SmartCharging,RemoteTrigger".into(),
            ),
            s(
                super::ops::LIST_MAX,
                "LocalAuthListCtrlr",
                "Entries",
                Int,
                ReadOnly,
                "1000".into(),
            ),
            s(
                super::ops::LIST_PER_MESSAGE,
                "LocalAuthListCtrlr",
                "ItemsPerMessage",
                Int,
                ReadOnly,
                "20".into(),
            ),
            s(
                "ChargeProfileMaxStackLevel",
                "SmartChargingCtrlr",
                "ProfileStackLevel",
                Int,
                ReadOnly,
                "8".into(),
            ),
            s(
                "ChargingScheduleAllowedChargingRateUnit",
                "SmartChargingCtrlr",
                "RateUnit",
                Text,
                ReadOnly,
                "Current,Power".into(),
            ),
            s(
                "ChargingScheduleMaxPeriods",
                "SmartChargingCtrlr",
                "PeriodsPerSchedule",
                Int,
                ReadOnly,
                "24".into(),
            ),
            s(
                "MaxChargingProfilesInstalled",
                "SmartChargingCtrlr",
                "Entries",
                Int,
                ReadOnly,
                "16".into(),
            ),
            s(
                "WebSocketPingInterval",
                "OCPPCommCtrlr",
                "WebSocketPingInterval",
                Int,
                ReadWrite,
                "30".into(),
            ),
            s(
                "TransactionMessageAttempts",
                "OCPPCommCtrlr",
                "MessageAttempts",
                Int,
                ReadWrite,
                "3".into(),
            ),
            s(
                "AuthorizationKey",
                "SecurityCtrlr",
                "BasicAuthPassword",
                Text,
                WriteOnly,
                String::new(),
            ),
        ];
        for (i, key) in public_keys.iter().enumerate() {
            list.push(s(
                &format!("MeterPublicKey[{}]", i + 1),
                "FiscalMetering",
                "PublicKey",
                Text,
                ReadOnly,
                key.clone(),
            ));
        }
        Settings { list }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.list.iter().find(|s| s.key == key).map(|s| s.value.as_str())
    }

    pub fn int(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(|v| v.parse().ok())
    }

    pub fn flag(&self, key: &str) -> bool {
        self.get(key) == Some("true")
    }

    /// Readable settings, for GetConfiguration / GetBaseReport.
    pub fn readable(&self) -> impl Iterator<Item = &Setting> {
        self.list.iter().filter(|s| s.access != Access::WriteOnly)
    }

    pub fn by_key(&self, key: &str) -> Option<&Setting> {
        self.list.iter().find(|s| s.key == key)
    }

    pub fn by_variable(&self, component: &str, variable: &str) -> Option<&Setting> {
        self.list
            .iter()
            .find(|s| s.component == component && s.variable == variable)
    }

    /// Set by 1.6 key, or by 2.0.1 component/variable when `variable` is given.
    pub fn set(&mut self, name: &str, variable: Option<&str>, value: &str) -> SetOutcome {
        let Some(s) = self.list.iter_mut().find(|s| match variable {
            None => s.key == name,
            Some(v) => s.component == name && s.variable == v,
        }) else {
            return SetOutcome::Unknown;
        };
        let valid = match s.kind {
            Kind::Int => value.parse::<u32>().is_ok(),
            Kind::Bool => matches!(value, "true" | "false"),
            Kind::Text => value.len() <= 500,
        };
        if s.access == Access::ReadOnly || !valid {
            return SetOutcome::Rejected;
        }
        s.value = value.to_string();
        SetOutcome::Accepted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_dialects_reach_the_same_setting() {
        let mut s = Settings::new(2, 10, "L2L3L1", &[]);
        assert_eq!(
            s.set("SampledDataCtrlr", Some("TxUpdatedInterval"), "30"),
            SetOutcome::Accepted
        );
        assert_eq!(s.int(METER_INTERVAL), Some(30));
        assert_eq!(s.set(METER_INTERVAL, None, "soon"), SetOutcome::Rejected);
        assert_eq!(s.set("NumberOfConnectors", None, "3"), SetOutcome::Rejected);
        assert_eq!(s.set("NoSuchKey", None, "1"), SetOutcome::Unknown);
        assert_eq!(s.get("ConnectorPhaseRotation"), Some("0.STR,1.STR,2.STR"));
        assert!(s.readable().all(|x| x.key != "AuthorizationKey"));
    }
}
