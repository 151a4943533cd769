//! `#[softprobe::cases]`: one generated test per committed case under `tests/cases/checkout/`,
//! each resending the recorded inbound requests to the service and comparing the answers.

use softprobe::Session;
use softprobe_e2e::{RECORDED_PORTS, Variant, checkout_app};

#[softprobe::cases(
    "cases/checkout/*.case.json",
    redact(".body.orderId", ".body.createdAt")
)]
async fn checkout(sp: Session) -> String {
    sp.serve(checkout_app(
        sp.http_client(),
        RECORDED_PORTS,
        Variant::Recorded,
    ))
    .await
}
