//! OCPI 2.1.1 tariffs, mapped onto the 2.2.1 model.
//!
//! What 2.1.1 lacks, and what the mapping does about it:
//! - no `country_code` / `party_id`: `None` in the model;
//! - no `vat` on a price component: `vat = None` (no VAT is added, gross = net);
//! - no `min_price` / `max_price`, `start_date_time` / `end_date_time`, `type`;
//! - no `min_current` / `max_current` / `reservation` restrictions.
//!
//! Everything else (dimension types, `step_size`, the other restrictions and
//! their semantics) is the same in both versions. Fields of 2.2.1 that 2.1.1
//! does not define are unknown fields inside an element, hence errors.

use super::model::OcpiVersion;
use super::parse::Fields;

pub(crate) const FIELDS: Fields = Fields {
    version: OcpiVersion::V211,
    component: &["type", "price", "step_size"],
    restrictions: &[
        "start_time",
        "end_time",
        "start_date",
        "end_date",
        "min_kwh",
        "max_kwh",
        "min_power",
        "max_power",
        "min_duration",
        "max_duration",
        "day_of_week",
    ],
};
