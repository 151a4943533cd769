//! The inventory service's gRPC API as the checkout service uses it: one unary call,
//! `shop.Inventory/Reserve`, with messages written as prost derives (no `.proto` compiler
//! needed) and tonic's generic client. The fake server is in [`crate::upstreams`].
//!
//! tonic has no HTTP proxy support of its own. To send its calls through softprobe's egress
//! proxy, [`channel`] connects to the proxy and names the inventory service as the
//! `:authority` of every call; the egress forwards such HTTP/2 requests to that authority
//! (over h2c for a plain `http://` one), as it forwards absolute-form HTTP/1 requests.

use std::time::Duration;

use tonic::codegen::http::uri::{PathAndQuery, Uri};
use tonic::transport::{Channel, Endpoint};
use tonic_prost::ProstCodec;

/// The path of the one call, `/package.Service/Method`.
pub const RESERVE: &str = "/shop.Inventory/Reserve";

/// Asks to hold `qty` units of `sku` for an order.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ReserveRequest {
    /// The stock keeping unit, e.g. `mug`.
    #[prost(string, tag = "1")]
    pub sku: String,
    /// How many units.
    #[prost(uint32, tag = "2")]
    pub qty: u32,
}

/// A reservation: its id, and how many units are left after it.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ReserveReply {
    /// The reservation id, new on every call (`res_...`).
    #[prost(string, tag = "1")]
    pub reservation: String,
    /// Units left in stock.
    #[prost(uint32, tag = "2")]
    pub left: u32,
}

/// A channel to the inventory service at `inventory_url` (`http://host:port`), through
/// `proxy` when given (an `HTTP_PROXY`-style URL; its credentials, if any, are not used: the
/// session rides in the forwarded `tracestate`). The channel connects on first use.
pub fn channel(inventory_url: &str, proxy: Option<&str>) -> Result<Channel, String> {
    let origin: Uri = inventory_url
        .parse()
        .map_err(|e| format!("INVENTORY_URL {inventory_url:?}: {e}"))?;
    if origin.scheme_str() != Some("http") || origin.authority().is_none() {
        return Err(format!(
            "INVENTORY_URL {inventory_url:?}: expected http://host:port (gRPC over h2c)"
        ));
    }
    let connect_to = match proxy {
        None => inventory_url.to_owned(),
        Some(proxy) => {
            let uri: Uri = proxy
                .parse()
                .map_err(|e| format!("HTTP_PROXY {proxy:?}: {e}"))?;
            let authority = uri
                .authority()
                .ok_or_else(|| format!("HTTP_PROXY {proxy:?}: no host"))?;
            let port = authority.port_u16().unwrap_or(80);
            format!("http://{}:{port}", authority.host())
        }
    };
    let endpoint = Endpoint::from_shared(connect_to.clone())
        .map_err(|e| format!("{connect_to:?}: {e}"))?
        .origin(origin)
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30));
    Ok(endpoint.connect_lazy())
}

/// Calls `Reserve`, sending `metadata` (the W3C trace context) with it.
pub async fn reserve(
    channel: Channel,
    metadata: &reqwest::header::HeaderMap,
    request: ReserveRequest,
) -> Result<ReserveReply, tonic::Status> {
    let mut client = tonic::client::Grpc::new(channel);
    client
        .ready()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("inventory: {e}")))?;
    let mut request = tonic::Request::new(request);
    for (name, value) in metadata {
        if let Ok(value) = value.to_str()
            && let Ok(value) = value.parse()
            && let Ok(key) = tonic::metadata::MetadataKey::<tonic::metadata::Ascii>::from_bytes(
                name.as_str().as_bytes(),
            )
        {
            request.metadata_mut().insert(key, value);
        }
    }
    client
        .unary(
            request,
            PathAndQuery::from_static(RESERVE),
            ProstCodec::default(),
        )
        .await
        .map(tonic::Response::into_inner)
}
