//! What every handler gets: the use cases and the options of the HTTP layer. The caches shared
//! by the workers of one server are app data of their own (`statistics::cache`,
//! `monitoring::gauges`), so that this module depends on no area.

use restdose_core::Services;

use crate::options::WebOptions;

#[derive(Clone)]
pub(crate) struct AppState {
    pub services: Services,
    pub options: WebOptions,
}
