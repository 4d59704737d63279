//! `charger set-password` and the other security subcommands' output.

use super::{Ctx, output};
use crate::control::client::ClientError;
use crate::control::proto::Request;

pub const SET_PASSWORD_HELP: &str =
    "The password is pushed to a connected charger (1.6 ChangeConfiguration AuthorizationKey,
2.0.1 SetVariables SecurityCtrlr.BasicAuthPassword). Until the charger accepts it, the old and
the new password are both valid, so a lost answer never locks the charger out.

Examples:
  voltyard charger set-password CP-001 --generate
  voltyard charger set-password CP-002 'a-long-shared-secret-16+' --offline";

pub async fn set_password(ctx: &Ctx, id: String, value: Option<String>, offline: bool) -> Result<(), ClientError> {
    let v = ctx
        .call(Request::ChargerSetPassword {
            id: id.clone(),
            password: value,
            offline,
        })
        .await?;
    let how = if offline {
        "stored (not pushed: set it on the charger)"
    } else {
        "accepted by the charger"
    };
    let mut msg = format!("password of {id} {how}");
    if let Some(pw) = v.get("password").and_then(|p| p.as_str()) {
        msg.push_str(&format!("\nnew password (shown once): {pw}"));
    }
    output::done(ctx, &v, &msg);
    Ok(())
}
