//! `#[softprobe::cases]`: one generated test per committed case under `tests/cases/checkout/`,
//! each resending the recorded inbound requests to the service and comparing the answers.

use softprobe::Session;
use softprobe_e2e::{Config, Variant, router, urls};

#[softprobe::cases(
    "cases/checkout/*.case.json",
    redact(".body.orderId", ".body.createdAt")
)]
async fn checkout(sp: Session) -> String {
    let (payments_url, shipping_url) = urls(47443, 47080);
    sp.serve(router(Config {
        http: sp.http_client(),
        payments_url,
        shipping_url,
        variant: Variant::Recorded,
    }))
    .await
}
