//! The executor API side of the runtime: SUBSCRIBE (first or after a broken stream),
//! UPDATE and MESSAGE from executors, and closed streams.

#[allow(clippy::wildcard_imports)]
use super::*;

impl Shared {
    // ------------------------------------------------------------------ executor API

    /// The executor record a call names, or the 400 of Mesos.
    pub(crate) fn lookup<'a>(
        st: &'a mut State,
        fid: &str,
        eid: &str,
    ) -> Result<&'a mut ExecRec, (http::StatusCode, String)> {
        let Some(fw) = st.frameworks.get_mut(fid) else {
            return Err((
                http::StatusCode::BAD_REQUEST,
                format!("Framework cannot be found: {fid}"),
            ));
        };
        match fw.executors.get_mut(eid) {
            Some(rec) if !rec.command_task => Ok(rec),
            _ => Err((
                http::StatusCode::BAD_REQUEST,
                format!("Executor cannot be found: {eid} of framework {fid}"),
            )),
        }
    }

    /// Opens the subscription stream of an executor: SUBSCRIBED, then the tasks it is
    /// owed. Returns the receiving end and the stream's generation.
    pub(crate) fn subscribe(
        &self,
        call: retz_proto::executor::Call,
        content_type: ContentType,
    ) -> Result<(tokio::sync::mpsc::UnboundedReceiver<Bytes>, u64), (http::StatusCode, String)>
    {
        let fid = call.framework_id.value.clone();
        let eid = call.executor_id.value.clone();
        let subscribe = call.subscribe.unwrap_or_default();
        let mut st = self.lock();
        if st.dead {
            return Err((
                http::StatusCode::SERVICE_UNAVAILABLE,
                "Agent is stopped".into(),
            ));
        }
        let generation = st.number();
        let group_base = st.number();
        let framework_info = st
            .frameworks
            .get(&fid)
            .map(|f| f.info.clone())
            .unwrap_or_default();
        let rec = Self::lookup(&mut st, &fid, &eid)?;
        if rec.phase == Phase::Launching {
            return Err((
                http::StatusCode::FORBIDDEN,
                "Executor is still being launched".into(),
            ));
        }
        let (tx, rx) = unbounded_channel();
        let weak_tx = tx.downgrade();
        rec.stream = Some(StreamTx {
            tx,
            content_type,
            generation,
        });
        let first = rec.phase == Phase::Registering && !rec.recovered;
        rec.recovered = false;
        rec.phase = Phase::Running;
        for t in &subscribe.unacknowledged_tasks {
            rec.known.insert(t.task_id.value.clone());
        }
        for u in &subscribe.unacknowledged_updates {
            rec.known.insert(u.status.task_id.value.clone());
        }
        let subscribed = Event {
            r#type: Some(event::Type::Subscribed as i32),
            subscribed: Some(event::Subscribed {
                executor_info: rec.info.clone(),
                framework_info,
                agent_info: self.agent_info(),
                container_id: Some(ContainerId {
                    value: rec.container_id.clone(),
                    parent: None,
                }),
            }),
            ..Default::default()
        };
        rec.send(&subscribed);
        if !first {
            // Tasks sent before the stream broke that the executor does not know of.
            let mut lost: BTreeMap<Option<u64>, Vec<TaskInfo>> = BTreeMap::new();
            for (tid, t) in &rec.tasks {
                if !t.state.is_terminal() && !rec.known.contains(tid) {
                    lost.entry(t.group).or_default().push(t.info.clone());
                }
            }
            for (group, tasks) in lost {
                let items = match group {
                    Some(_) => vec![Launchable::Group(TaskGroupInfo { tasks })],
                    None => tasks
                        .into_iter()
                        .map(|t| Launchable::Task(Box::new(t)))
                        .collect(),
                };
                for item in items {
                    send_launch(rec, &item);
                }
            }
        }
        for (i, item) in std::mem::take(&mut rec.queued).into_iter().enumerate() {
            deliver(rec, &item, group_base * 1_000_000 + i as u64);
        }
        let shutting_down = rec.shutting_down;
        let container = rec.container_id.clone();
        // Updates the executor did not see acknowledged before it re-subscribed.
        for u in subscribe.unacknowledged_updates {
            let check = retz_proto::executor::Call {
                executor_id: call.executor_id.clone(),
                framework_id: call.framework_id.clone(),
                r#type: Some(retz_proto::executor::call::Type::Update as i32),
                update: Some(u),
                ..Default::default()
            };
            if let Err(e) = crate::agent::validation::validate_call(&check) {
                tracing::warn!(framework = %fid, executor = %eid, "unacknowledged update ignored: {e}");
                continue;
            }
            if let Some(u) = check.update {
                self.executor_update(&mut st, &fid, &eid, u.status);
            }
        }
        self.checkpoint(&st, &fid, &eid);
        if shutting_down && let Some(rec) = st.exec_mut(&fid, &eid) {
            rec.send(&Event {
                r#type: Some(event::Type::Shutdown as i32),
                ..Default::default()
            });
        }
        tracing::info!(framework = %fid, executor = %eid, container = %container, first, "executor subscribed");
        drop(st);
        // Heartbeats, while the stream lives (a weak sender does not keep it open).
        self.spawn(async move {
            let heartbeat = {
                let mut buf = BytesMut::new();
                let ev = Event {
                    r#type: Some(event::Type::Heartbeat as i32),
                    ..Default::default()
                };
                encode_record(&content_type.encode(&ev), &mut buf);
                buf.freeze()
            };
            loop {
                tokio::time::sleep(crate::agent::EXECUTOR_HEARTBEAT_INTERVAL).await;
                let Some(tx) = weak_tx.upgrade() else {
                    return;
                };
                if tx.send(heartbeat.clone()).is_err() {
                    return;
                }
            }
        });
        Ok((rx, generation))
    }

    /// An accepted UPDATE (validated): recorded, forwarded through the status update
    /// manager, acknowledged to the executor.
    pub(crate) fn executor_update(
        &self,
        st: &mut State,
        fid: &str,
        eid: &str,
        mut status: TaskStatus,
    ) {
        let Some(rec) = st.exec_mut(fid, eid) else {
            return;
        };
        let tid = status.task_id.clone();
        let uuid = status.uuid.clone().unwrap_or_default();
        rec.known.insert(tid.value.clone());
        if status.agent_id.is_none() {
            status.agent_id = Some(self.agent_id());
        }
        if status.executor_id.is_none() {
            status.executor_id = Some(ExecutorId {
                value: eid.to_string(),
            });
        }
        if status.container_status.is_none() {
            status.container_status = Some(container_status(rec));
        }
        self.forward_update(st, fid, status);
        // Durable before the executor hears it was received.
        self.checkpoint(st, fid, eid);
        if let Some(rec) = st.exec_mut(fid, eid) {
            rec.send(&Event {
                r#type: Some(event::Type::Acknowledged as i32),
                acknowledged: Some(event::Acknowledged { task_id: tid, uuid }),
                ..Default::default()
            });
        }
    }

    pub(crate) fn executor_message(&self, st: &State, fid: &str, eid: &str, data: Vec<u8>) {
        self.emit(
            st,
            AgentReport::FrameworkMessage {
                agent_id: self.agent_id(),
                framework_id: FrameworkId {
                    value: fid.to_string(),
                },
                executor_id: ExecutorId {
                    value: eid.to_string(),
                },
                data,
            },
        );
    }

    /// The subscription stream `generation` of an executor was closed by the peer.
    pub(crate) fn stream_closed(&self, fid: &str, eid: &str, generation: u64) {
        let mut st = self.lock();
        if let Some(rec) = st.exec_mut(fid, eid)
            && rec
                .stream
                .as_ref()
                .is_some_and(|s| s.generation == generation)
        {
            rec.stream = None;
            tracing::info!(framework = fid, executor = eid, "executor stream closed");
        }
    }
}
