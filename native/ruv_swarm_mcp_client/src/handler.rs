//! The client side of the MCP session: what the server may send us
//! (progress, `tools/list_changed`), and the writer of frames to the actor.

use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::service::{NotificationContext, RoleClient};
use rmcp::ClientHandler;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

enum Out {
    Frame(Vec<u8>),
    Exit(i32),
}

/// Frames to the actor, written in order by one thread.
#[derive(Clone)]
pub struct Events(mpsc::Sender<Out>);

impl Events {
    pub fn spawn_writer() -> Events {
        let (tx, rx) = mpsc::channel::<Out>();
        std::thread::spawn(move || {
            let mut stdout = std::io::stdout().lock();
            for out in rx {
                match out {
                    Out::Frame(body) => {
                        if crate::frame::write(&mut stdout, &body).is_err() {
                            std::process::exit(0);
                        }
                    }
                    Out::Exit(code) => std::process::exit(code),
                }
            }
        });
        Events(tx)
    }

    pub fn send(&self, event: &Value) {
        if let Ok(body) = serde_json::to_vec(event) {
            let _ = self.0.send(Out::Frame(body));
        }
    }

    /// Exits once every frame sent before has been written.
    pub fn flush_and_exit(&self, code: i32) -> ! {
        let _ = self.0.send(Out::Exit(code));
        loop {
            std::thread::park();
        }
    }
}

#[derive(Clone)]
pub struct Handler {
    events: Events,
    progress: Arc<Mutex<HashMap<ProgressToken, u64>>>,
}

impl Handler {
    pub fn new(events: Events) -> Handler {
        Handler {
            events,
            progress: Arc::default(),
        }
    }

    pub fn track_progress(&self, token: ProgressToken, id: u64) {
        self.progress.lock().unwrap().insert(token, id);
    }

    pub fn untrack_progress(&self, token: &ProgressToken) {
        self.progress.lock().unwrap().remove(token);
    }
}

impl ClientHandler for Handler {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let id = self
            .progress
            .lock()
            .unwrap()
            .get(&params.progress_token)
            .copied();
        if let Some(id) = id {
            self.events.send(&json!({
                "ev": "progress", "id": id, "progress": params.progress,
                "total": params.total, "message": params.message,
            }));
        }
    }

    async fn on_tool_list_changed(&self, context: NotificationContext<RoleClient>) {
        if let Ok(tools) = context.peer.list_all_tools().await {
            self.events
                .send(&json!({"ev": "tools", "id": null, "tools": tools}));
        }
    }
}
