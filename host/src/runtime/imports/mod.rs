//! The host side of the weft WIT interfaces, one file per interface, and the linker of each
//! guest kind.
//!
//! - [`orchestration_context`]: `orchestration-context`, for orchestrations: each call replays
//!   its recorded result or records it live.
//! - [`activity_context`]: `activity-context`, for activities: the attempt's identity.
//!
//! Each guest kind is linked with the interface it is given and nothing else: an orchestration
//! with `orchestration-context`, an activity with `activity-context`, an entity operation (or
//! a component asked what it exports) with neither. The functions a component imports from an
//! interface its kind is not given are defined, when the component is loaded, as traps whose
//! message names the interface and who may call it (see [`crate::wasm::trap_imports`]).

mod activity_context;
mod orchestration_context;

use super::activation::Activation;
use super::activity::ActivityCall;
use crate::wasm::bindings::WorkflowPre;
use crate::wasm::bindings::weft::workflow::{activity_context as ac, orchestration_context as oc};
use crate::wasm::{self, ACTIVITY_CONTEXT, GuestState, ORCHESTRATION_CONTEXT, trap_imports};
use wasmtime::component::{Component, HasSelf, Linker};

/// The weft context of a guest given neither context interface: an entity operation, or a
/// component asked what it exports.
pub struct NoContext;

const ORCHESTRATIONS_ONLY: &str = "orchestration-context is available to orchestrations";
const ACTIVITIES_ONLY: &str = "activity-context is available to activities";

/// A component linked for each guest kind, ready to instantiate.
pub(super) struct Linked {
    pub orchestration: WorkflowPre<GuestState<Activation>>,
    pub activity: WorkflowPre<GuestState<ActivityCall>>,
    pub entity: WorkflowPre<GuestState<NoContext>>,
}

/// The linker of each guest kind, without the traps of a particular component.
pub(super) struct Linkers {
    orchestration: Linker<GuestState<Activation>>,
    activity: Linker<GuestState<ActivityCall>>,
    entity: Linker<GuestState<NoContext>>,
}

impl Linkers {
    pub fn new(engine: &wasmtime::Engine) -> wasmtime::Result<Self> {
        let mut orchestration = wasm::linker(engine)?;
        oc::add_to_linker::<_, HasSelf<_>>(&mut orchestration, |s| s)?;
        let mut activity = wasm::linker(engine)?;
        ac::add_to_linker::<_, HasSelf<_>>(&mut activity, |s| s)?;
        Ok(Self {
            orchestration,
            activity,
            entity: wasm::linker(engine)?,
        })
    }

    /// Links `component` for each guest kind, the interfaces a kind is not given as traps.
    pub fn link(&self, component: &Component) -> wasmtime::Result<Linked> {
        let mut orchestration = self.orchestration.clone();
        let why = format!("{ACTIVITIES_ONLY}, not orchestrations");
        trap_imports(&mut orchestration, component, ACTIVITY_CONTEXT, &why)?;

        let mut activity = self.activity.clone();
        let why = format!("{ORCHESTRATIONS_ONLY}, not activities");
        trap_imports(&mut activity, component, ORCHESTRATION_CONTEXT, &why)?;

        let mut entity = self.entity.clone();
        let why = format!("{ORCHESTRATIONS_ONLY}, not entities");
        trap_imports(&mut entity, component, ORCHESTRATION_CONTEXT, &why)?;
        let why = format!("{ACTIVITIES_ONLY}, not entities");
        trap_imports(&mut entity, component, ACTIVITY_CONTEXT, &why)?;

        Ok(Linked {
            orchestration: WorkflowPre::new(orchestration.instantiate_pre(component)?)?,
            activity: WorkflowPre::new(activity.instantiate_pre(component)?)?,
            entity: WorkflowPre::new(entity.instantiate_pre(component)?)?,
        })
    }
}
