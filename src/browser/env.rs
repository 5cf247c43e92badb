//! The few things the engine needs from its JavaScript host, for a window and a service
//! worker alike: the time, random ids, `navigator.onLine`, timers and connectivity events.

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::EventTarget;

use crate::core::model::{time_ordered_ids, ID_RANDOM_BYTES};

/// Wall-clock Unix milliseconds.
pub fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

/// `n` new operation ids: time-ordered UUIDs (version 7, see
/// [`time_ordered_ids`](crate::core::model::time_ordered_ids)), their random part from the
/// host's `crypto.getRandomValues`.
pub fn new_ids(n: usize) -> Result<Vec<uuid::Uuid>, String> {
    let crypto: web_sys::Crypto = Reflect::get(&js_sys::global(), &"crypto".into())
        .ok()
        .and_then(|c| c.dyn_into().ok())
        .ok_or_else(|| "crypto is not available".to_string())?;
    let mut bytes = vec![0u8; n * ID_RANDOM_BYTES];
    // getRandomValues fills at most 65,536 bytes a call.
    for chunk in bytes.chunks_mut(65_536) {
        crypto
            .get_random_values_with_u8_array(chunk)
            .map_err(|_| "crypto.getRandomValues failed".to_string())?;
    }
    Ok(time_ordered_ids(now_ms(), &bytes))
}

/// `navigator.onLine`, or `true` where the host does not say.
pub fn is_online() -> bool {
    Reflect::get(&js_sys::global(), &"navigator".into())
        .ok()
        .and_then(|nav| Reflect::get(&nav, &"onLine".into()).ok())
        .and_then(|v| v.as_bool())
        .unwrap_or(true)
}

/// Resolves after `ms` milliseconds (`setTimeout`, in a window or a worker).
pub async fn sleep(ms: u32) {
    let promise = Promise::new(&mut |resolve, _| {
        let set_timeout = Reflect::get(&js_sys::global(), &"setTimeout".into())
            .ok()
            .and_then(|f| f.dyn_into::<Function>().ok());
        match set_timeout {
            Some(f) => {
                let _ = f.call2(&JsValue::UNDEFINED, &resolve, &JsValue::from(ms));
            }
            None => {
                let _ = resolve.call0(&JsValue::UNDEFINED);
            }
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// A listener on the global object; removed when dropped.
pub struct GlobalListener {
    event: &'static str,
    closure: Closure<dyn FnMut(web_sys::Event)>,
}

impl GlobalListener {
    /// Listens for `event` (`online`, `offline`) on the global object.
    pub fn new(event: &'static str, f: impl FnMut(web_sys::Event) + 'static) -> Option<Self> {
        let closure = Closure::<dyn FnMut(web_sys::Event)>::new(f);
        let target: EventTarget = js_sys::global().dyn_into().ok()?;
        target
            .add_event_listener_with_callback(event, closure.as_ref().unchecked_ref())
            .ok()?;
        Some(GlobalListener { event, closure })
    }
}

impl Drop for GlobalListener {
    fn drop(&mut self) {
        if let Ok(target) = js_sys::global().dyn_into::<EventTarget>() {
            let _ = target.remove_event_listener_with_callback(
                self.event,
                self.closure.as_ref().unchecked_ref(),
            );
        }
    }
}
