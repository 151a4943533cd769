//! `GET /v1/captures/{sessionId}`: the case file a capture session wrote when it closed, for
//! clients that cannot read the runtime's disk (the original Softprobe CLI's `cases get`, and
//! its `session close --out` when no `capturePath` came back). The runtime remembers where the
//! last closed captures went; the file itself stays the one source.

use std::collections::VecDeque;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Mutex;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};

/// How many closed captures are remembered; older ones answer 404.
const REMEMBERED: usize = 4096;

/// Where the capture of each recently closed session was written.
#[derive(Debug, Default)]
pub(crate) struct Captures {
    written: Mutex<VecDeque<(String, PathBuf)>>,
}

impl Captures {
    /// Notes that `session`'s capture went to `path`.
    pub(crate) fn remember(&self, session: &str, path: &FsPath) {
        let mut list = self.written.lock().unwrap_or_else(|p| p.into_inner());
        if list.len() == REMEMBERED {
            list.pop_front();
        }
        list.push_back((session.to_owned(), path.to_owned()));
    }

    fn path_of(&self, session: &str) -> Option<PathBuf> {
        let list = self.written.lock().unwrap_or_else(|p| p.into_inner());
        list.iter()
            .rev()
            .find(|(id, _)| id == session)
            .map(|(_, p)| p.clone())
    }
}

pub(crate) async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let Some(path) = state.captures().path_of(&id) else {
        return Err(if state.store().get(&id).is_some() {
            ApiError::invalid(format!(
                "session `{id}` is still open: its capture is written when it closes"
            ))
        } else {
            ApiError::unknown_session(&id)
        });
    };
    // Case files are small; the read is cheaper than a hop to the blocking pool.
    let bytes = std::fs::read(&path).map_err(|e| {
        ApiError::not_found(format!(
            "the capture of session `{id}` was written to {}, which cannot be read now: {e}",
            path.display()
        ))
    })?;
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}
