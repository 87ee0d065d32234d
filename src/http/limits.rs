//! Ceilings on parked requests, so one client cannot hold every socket and lock newcomers out.
//!
//! A parked long poll or agent stream costs a socket and a little memory for as long as the
//! client keeps it; the legacy bounded that only by PHP-FPM's worker count. Here each client
//! address and each username gets a ceiling (0 = none); past it the request is refused at once
//! with nginx's `limit_conn` answer (503), and nothing is claimed for it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::store::collation::Collation;

/// What is counted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Slot {
    Address(IpAddr),
    User(Vec<u8>),
}

/// Counts of parked requests per address and per username.
#[derive(Debug)]
pub struct ParkLimits {
    per_address: usize,
    per_user: usize,
    // A std Mutex: never held across an .await.
    parked: Mutex<HashMap<Slot, usize>>,
    collation: Arc<Collation>,
}

/// One admitted request's place; dropping it frees the place.
#[derive(Debug)]
pub struct Parked {
    limits: Arc<ParkLimits>,
    slots: Vec<Slot>,
}

impl ParkLimits {
    /// Ceilings per address and per username (keyed by `collation`, as the table compares
    /// them); 0 means none.
    pub fn new(per_address: usize, per_user: usize, collation: Arc<Collation>) -> Arc<ParkLimits> {
        Arc::new(ParkLimits {
            per_address,
            per_user,
            parked: Mutex::new(HashMap::new()),
            collation,
        })
    }

    /// Takes a place for a request from `address` waiting as `user` (None: not counted per
    /// user), or `None` when either is at its ceiling.
    pub fn admit(self: &Arc<Self>, address: IpAddr, user: Option<&[u8]>) -> Option<Parked> {
        let mut wanted = vec![(Slot::Address(address), self.per_address)];
        if let Some(user) = user {
            wanted.push((Slot::User(self.collation.key(user)), self.per_user));
        }
        let mut parked = self.lock();
        let full = wanted.iter().any(|(slot, ceiling)| {
            *ceiling > 0 && parked.get(slot).copied().unwrap_or(0) >= *ceiling
        });
        if full {
            return None;
        }
        let slots: Vec<Slot> = wanted.into_iter().map(|(slot, _)| slot).collect();
        for slot in &slots {
            *parked.entry(slot.clone()).or_default() += 1;
        }
        Some(Parked {
            limits: Arc::clone(self),
            slots,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Slot, usize>> {
        // Counts stay consistent whatever panicked while holding the lock.
        self.parked
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        let mut parked = self.limits.lock();
        for slot in &self.slots {
            if let Some(count) = parked.get_mut(slot) {
                *count -= 1;
                if *count == 0 {
                    parked.remove(slot);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const OFFICE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

    #[test]
    fn each_address_and_each_user_has_its_ceiling() {
        let limits = ParkLimits::new(2, 1, Arc::default());
        let a = limits.admit(HOME, Some(b"admin1")).expect("first");
        assert!(limits.admit(HOME, Some(b"ADMIN1 ")).is_none(), "same user");
        let b = limits.admit(HOME, Some(b"admin2")).expect("second user");
        assert!(
            limits.admit(HOME, Some(b"admin3")).is_none(),
            "address full"
        );
        assert!(
            limits.admit(OFFICE, Some(b"admin3")).is_some(),
            "other address"
        );
        drop(a);
        assert!(limits.admit(HOME, Some(b"admin1")).is_some(), "place freed");
        drop(b);
        assert!(limits.lock().len() <= 2, "empty counts are removed");
    }

    #[test]
    fn zero_means_no_ceiling() {
        let limits = ParkLimits::new(0, 0, Arc::default());
        let held: Vec<_> = (0..1000)
            .map(|_| limits.admit(HOME, Some(b"x")).expect("unbounded"))
            .collect();
        assert_eq!(held.len(), 1000);
    }
}
