//! The allocator: turns the free resources of each agent into at most one offer per
//! allocation round, and keeps the offer filters that DECLINE (and the unused part of an
//! ACCEPT) install, REVIVE clears and SUPPRESS complements.
//!
//! Rules (the built-in hierarchical allocator's, simplified to one level):
//! * an agent's free resources are `total - used - offered`; they are offered only if they
//!   hold at least 0.01 cpus or 32 MB of memory (Mesos' minimum allocatable resources);
//! * each agent goes to the eligible framework with the smallest allocated share of cpus
//!   (ties: the oldest id), for the first of its roles that is not suppressed and not
//!   filtered; unreserved resources plus those reserved for that role are offered;
//! * agents with GPUs are only offered to frameworks with GPU_RESOURCES;
//! * a filter refuses resources *contained* in what was declined, so resources freed later
//!   on the same agent are offered again at once;
//! * `refuse_seconds` defaults to 5, a negative or NaN value uses the default, and it is
//!   capped at 31536000 s (365 days); zero installs no filter.
//!
//! When: a round runs every allocation interval, and at once (`allocate_if_wanted`,
//! after every command the actor applies) when resources were freed (a task's terminal
//! update, an executor's exit, a framework's removal), when a filter expired, and on
//! SUBSCRIBE, REVIVE and a new agent. Declined resources and the unused part of an
//! ACCEPT do not trigger a round: they come back when their filter expires or at the
//! next interval, so a framework declining without a filter cannot make the master spin.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use retz_proto::mesos::{
    Address, AgentId, ExecutorId, Filters, FrameworkId, Offer, OfferId, Url, framework_info,
    resource,
};
use retz_proto::scheduler::{Event, event};

use super::core::{Core, OfferEntry, OfferFilter};
use super::resources::Resources;

/// Mesos' default `Filters.refuse_seconds`.
pub const DEFAULT_REFUSE_SECONDS: f64 = 5.0;
/// The master's cap on `refuse_seconds`.
pub const MAX_REFUSE_SECONDS: f64 = 31_536_000.0;

/// The filter duration a `Filters` asks for (see the module rules).
pub fn refuse_duration(filters: Option<&Filters>) -> Duration {
    let secs = filters
        .and_then(|f| f.refuse_seconds)
        .unwrap_or(DEFAULT_REFUSE_SECONDS);
    let secs = if secs.is_nan() || secs < 0.0 {
        DEFAULT_REFUSE_SECONDS
    } else {
        secs.min(MAX_REFUSE_SECONDS)
    };
    Duration::from_secs_f64(secs)
}

/// Whether `r` is worth offering (Mesos' `min_allocatable_resources` default).
pub fn allocatable(r: &Resources) -> bool {
    r.scalar("cpus").unwrap_or(0.0) >= 0.01 || r.scalar("mem").unwrap_or(0.0) >= 32.0
}

impl Core {
    /// Runs a round now if something freed resources since the last one (see the module
    /// doc); true if it ran.
    pub fn allocate_if_wanted(&mut self, now: Instant) -> bool {
        if !self.allocation_wanted {
            return false;
        }
        self.allocate(now);
        true
    }

    /// When the first offer filter of a connected framework expires, if any (a
    /// disconnected framework gets no offers, so its filters wake nothing).
    pub(super) fn next_filter_expiry(&self) -> Option<Instant> {
        self.frameworks
            .values()
            .filter(|fw| fw.connected())
            .flat_map(|fw| fw.filters.values().flatten())
            .map(|f| f.expires)
            .min()
    }

    /// One allocation round.
    pub fn allocate(&mut self, now: Instant) {
        self.allocation_wanted = false;
        for fw in self.frameworks.values_mut() {
            fw.filters.retain(|_, list| {
                list.retain(|f| f.expires > now);
                !list.is_empty()
            });
        }
        // Allocated cpus per framework, for the fair-share order.
        let mut share: BTreeMap<String, f64> = BTreeMap::new();
        for (id, fw) in &self.frameworks {
            if !fw.connected() {
                continue;
            }
            let mut cpus = 0.0;
            for t in fw.tasks.values().filter(|t| !t.released) {
                cpus += t.resources.scalar("cpus").unwrap_or(0.0);
            }
            for o in &fw.offers {
                if let Some(offer) = self.offers.get(o) {
                    cpus += offer.resources.scalar("cpus").unwrap_or(0.0);
                }
            }
            share.insert(id.clone(), cpus);
        }
        if share.is_empty() {
            return;
        }
        let mut batches: BTreeMap<String, Vec<Offer>> = BTreeMap::new();
        let agent_ids: Vec<String> = self.agents.keys().cloned().collect();
        for agent_id in agent_ids {
            let Some(agent) = self.agents.get(&agent_id) else {
                continue;
            };
            let free = agent.total.minus(&agent.used).minus(&agent.offered);
            if !allocatable(&free) {
                continue;
            }
            let has_gpus = agent.total.scalar("gpus").unwrap_or(0.0) > 0.0;
            let mut order: Vec<(&String, &f64)> = share.iter().collect();
            order.sort_by(|a, b| a.1.total_cmp(b.1).then_with(|| a.0.cmp(b.0)));
            let mut chosen: Option<(String, String, Resources)> = None;
            'frameworks: for (fid, _) in order {
                let Some(fw) = self.frameworks.get(fid) else {
                    continue;
                };
                if has_gpus && !fw.capability(framework_info::capability::Type::GpuResources) {
                    continue;
                }
                for role in fw.roles() {
                    if fw.suppressed.contains(&role) {
                        continue;
                    }
                    let mut candidate = free.unreserved();
                    if let Some(reserved) = free.reserved_by_role().get(&role) {
                        candidate.add(reserved);
                    }
                    if !allocatable(&candidate) {
                        continue;
                    }
                    let filtered = fw
                        .filters
                        .get(&(agent_id.clone(), role.clone()))
                        .is_some_and(|list| list.iter().any(|f| f.resources.contains(&candidate)));
                    if filtered {
                        continue;
                    }
                    chosen = Some((fid.clone(), role, candidate));
                    break 'frameworks;
                }
            }
            let Some((fid, role, resources)) = chosen else {
                continue;
            };
            let offer = self.make_offer(&fid, &agent_id, &role, resources, now);
            *share.entry(fid.clone()).or_insert(0.0) += self
                .offers
                .get(&offer.id.value)
                .and_then(|o| o.resources.scalar("cpus"))
                .unwrap_or(0.0);
            batches.entry(fid).or_default().push(offer);
        }
        for (fid, offers) in batches {
            self.counters.offers_sent += offers.len() as u64;
            if let Some(fw) = self.frameworks.get(&fid) {
                fw.send(&Event {
                    r#type: Some(event::Type::Offers as i32),
                    offers: Some(event::Offers { offers }),
                    ..Default::default()
                });
            }
        }
    }

    fn make_offer(
        &mut self,
        fid: &str,
        agent_id: &str,
        role: &str,
        resources: Resources,
        now: Instant,
    ) -> Offer {
        let id = format!("{}-O{}", self.config.master_id, self.next_offer);
        self.next_offer += 1;
        let fw = &self.frameworks[fid];
        let multi_role = fw.capability(framework_info::capability::Type::MultiRole);
        let refinement = fw.capability(framework_info::capability::Type::ReservationRefinement);
        let alloc_role = multi_role.then_some(role);
        let executor_ids: Vec<ExecutorId> = fw
            .executors
            .range((agent_id.to_string(), String::new())..)
            .take_while(|((a, _), _)| a == agent_id)
            .map(|(_, ex)| ex.info.executor_id.clone())
            .collect();
        let agent = self.agents.get_mut(agent_id).expect("offered agent exists");
        let port = agent.info.port.unwrap_or(5051);
        let offer = Offer {
            id: OfferId { value: id.clone() },
            framework_id: FrameworkId {
                value: fid.to_string(),
            },
            agent_id: AgentId {
                value: agent_id.to_string(),
            },
            hostname: agent.info.hostname.clone(),
            url: Some(Url {
                scheme: "http".into(),
                address: Address {
                    hostname: Some(agent.info.hostname.clone()),
                    ip: Some("127.0.0.1".into()),
                    port,
                },
                path: Some("/slave(1)".into()),
                ..Default::default()
            }),
            resources: resources.to_protos(!refinement, alloc_role),
            attributes: agent.info.attributes.clone(),
            executor_ids,
            allocation_info: alloc_role.map(|r| resource::AllocationInfo {
                role: Some(r.to_string()),
            }),
            ..Default::default()
        };
        agent.offered.add(&resources);
        self.offers.insert(
            id.clone(),
            OfferEntry {
                offer: offer.clone(),
                resources,
                framework_id: fid.to_string(),
                agent_id: agent_id.to_string(),
                role: role.to_string(),
                expires: self.config.offer_timeout.and_then(|t| now.checked_add(t)),
            },
        );
        if let Some(fw) = self.frameworks.get_mut(fid) {
            fw.offers.insert(id);
        }
        offer
    }

    /// Installs a filter refusing `resources` of `agent_id` for `role` to `fid`.
    pub(super) fn add_filter(
        &mut self,
        fid: &str,
        agent_id: &str,
        role: &str,
        resources: Resources,
        filters: Option<&Filters>,
        now: Instant,
    ) {
        let d = refuse_duration(filters);
        if d.is_zero() || resources.is_empty() {
            return;
        }
        let Some(expires) = now.checked_add(d) else {
            return;
        };
        if let Some(fw) = self.frameworks.get_mut(fid) {
            fw.filters
                .entry((agent_id.to_string(), role.to_string()))
                .or_default()
                .push(OfferFilter { resources, expires });
        }
    }

    /// DECLINE: the offers' resources go back, filtered for `refuse_seconds`. Unknown or
    /// foreign offer ids are ignored, as Mesos does.
    pub(super) fn decline(
        &mut self,
        fid: &str,
        offer_ids: &[OfferId],
        filters: Option<&Filters>,
        now: Instant,
    ) {
        for oid in offer_ids {
            let ours = self
                .offers
                .get(&oid.value)
                .is_some_and(|o| o.framework_id == fid);
            if !ours {
                continue;
            }
            if let Some(offer) = self.remove_offer(&oid.value, false) {
                self.counters.offers_declined += 1;
                self.add_filter(
                    fid,
                    &offer.agent_id,
                    &offer.role,
                    offer.resources,
                    filters,
                    now,
                );
            }
        }
    }

    /// REVIVE: clears the filters of `roles` (all when empty), unsuppresses them and
    /// allocates at once.
    pub(super) fn revive(&mut self, fid: &str, roles: &[String], now: Instant) {
        if let Some(fw) = self.frameworks.get_mut(fid) {
            let roles: Vec<String> = if roles.is_empty() {
                fw.roles()
            } else {
                roles.to_vec()
            };
            fw.filters.retain(|(_, role), _| !roles.contains(role));
            for r in &roles {
                fw.suppressed.remove(r);
            }
        }
        self.allocate(now);
    }

    /// SUPPRESS: no more offers for `roles` (all when empty) until REVIVE.
    pub(super) fn suppress(&mut self, fid: &str, roles: &[String]) {
        if let Some(fw) = self.frameworks.get_mut(fid) {
            let roles: Vec<String> = if roles.is_empty() {
                fw.roles()
            } else {
                roles.to_vec()
            };
            fw.suppressed.extend(roles);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuse_seconds_default_cap_and_bad_values() {
        assert_eq!(refuse_duration(None), Duration::from_secs(5));
        let f = |v: f64| Filters {
            refuse_seconds: Some(v),
        };
        assert_eq!(refuse_duration(Some(&f(0.0))), Duration::ZERO);
        assert_eq!(refuse_duration(Some(&f(-3.0))), Duration::from_secs(5));
        assert_eq!(refuse_duration(Some(&f(f64::NAN))), Duration::from_secs(5));
        assert_eq!(
            refuse_duration(Some(&f(f64::INFINITY))),
            Duration::from_secs(31_536_000)
        );
        assert_eq!(refuse_duration(Some(&f(1.5))), Duration::from_millis(1500));
        assert_eq!(
            refuse_duration(Some(&Filters::default())),
            Duration::from_secs(5)
        );
    }
}
