//! Which `m.room.member` events each device has been sent by syncs with lazy-loaded
//! members, so that later syncs leave out the ones it has (unless the filter asks for
//! `include_redundant_members`), as Synapse does. Kept in memory only: after a restart,
//! or when a device's record is dropped for space, members are sent again, which is
//! redundant but never wrong.

use std::collections::HashMap;
use std::sync::Mutex;

use ruma::{
    DeviceId, EventId, OwnedDeviceId, OwnedEventId, OwnedRoomId, OwnedUserId, RoomId, UserId,
};

/// Member events remembered per device before its record starts afresh.
const MAX_PER_DEVICE: usize = 20_000;
/// Devices remembered; the least recently syncing one is dropped beyond this.
const MAX_DEVICES: usize = 10_000;

#[derive(Default)]
struct DeviceRecord {
    /// Room → member → the member event last sent.
    sent: HashMap<OwnedRoomId, HashMap<String, OwnedEventId>>,
    count: usize,
    last_used: u64,
}

#[derive(Default)]
struct Devices {
    users: HashMap<OwnedUserId, HashMap<OwnedDeviceId, DeviceRecord>>,
    devices: usize,
    clock: u64,
}

impl Devices {
    fn get(&self, user_id: &UserId, device_id: &DeviceId) -> Option<&DeviceRecord> {
        self.users.get(user_id)?.get(device_id)
    }

    /// Drops the device that synced least recently.
    fn evict_oldest(&mut self) {
        let oldest = self
            .users
            .iter()
            .flat_map(|(user, devices)| {
                devices
                    .iter()
                    .map(move |(device, record)| (record.last_used, user, device))
            })
            .min_by_key(|(used, _, _)| *used)
            .map(|(_, user, device)| (user.clone(), device.clone()));
        if let Some((user, device)) = oldest {
            self.remove(&user, &device);
        }
    }

    fn remove(&mut self, user_id: &UserId, device_id: &DeviceId) {
        if let Some(devices) = self.users.get_mut(user_id)
            && devices.remove(device_id).is_some()
        {
            self.devices -= 1;
            if devices.is_empty() {
                self.users.remove(user_id);
            }
        }
    }
}

#[derive(Default)]
pub struct LazyMembersSent {
    devices: Mutex<Devices>,
}

impl LazyMembersSent {
    fn lock(&self) -> std::sync::MutexGuard<'_, Devices> {
        self.devices.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An initial sync: the client starts from nothing, so it is sent every member again.
    pub fn forget(&self, user_id: &UserId, device_id: &DeviceId) {
        self.lock().remove(user_id, device_id);
    }

    /// Whether the device was already sent `event_id` as `member`'s membership in `room`.
    pub fn was_sent(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        room_id: &RoomId,
        member: &str,
        event_id: &EventId,
    ) -> bool {
        self.lock()
            .get(user_id, device_id)
            .and_then(|record| record.sent.get(room_id)?.get(member))
            .is_some_and(|sent| sent == event_id)
    }

    /// Whether the device was sent any membership of `member` in `room`: later changes
    /// reach it through timelines, or through the state of a gappy sync.
    pub fn knows(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        room_id: &RoomId,
        member: &str,
    ) -> bool {
        self.lock()
            .get(user_id, device_id)
            .and_then(|record| record.sent.get(room_id))
            .is_some_and(|members| members.contains_key(member))
    }

    /// Notes the member events a response carries to the device.
    pub fn record<'a>(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        room_id: &RoomId,
        members: impl IntoIterator<Item = (&'a str, OwnedEventId)>,
    ) {
        let mut members = members.into_iter().peekable();
        if members.peek().is_none() {
            return;
        }
        let mut guard = self.lock();
        let state = &mut *guard;
        state.clock += 1;
        let now = state.clock;
        if state.get(user_id, device_id).is_none() {
            if state.devices >= MAX_DEVICES {
                state.evict_oldest();
            }
            state.devices += 1;
        }
        let record = state
            .users
            .entry(user_id.to_owned())
            .or_default()
            .entry(device_id.to_owned())
            .or_default();
        record.last_used = now;
        for (member, event_id) in members {
            if record.count >= MAX_PER_DEVICE {
                record.sent.clear();
                record.count = 0;
            }
            let room = record.sent.entry(room_id.to_owned()).or_default();
            if room.insert(member.to_owned(), event_id).is_none() {
                record.count += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_what_each_device_was_sent_until_forgotten() {
        let sent = LazyMembersSent::default();
        let alice = <&UserId>::try_from("@alice:x").unwrap();
        let (one, two) = (<&DeviceId>::from("ONE"), <&DeviceId>::from("TWO"));
        let room = <&RoomId>::try_from("!r:x").unwrap();
        let join = <&EventId>::try_from("$join").unwrap();
        let leave = <&EventId>::try_from("$leave").unwrap();
        sent.record(alice, one, room, [("@bob:x", join.to_owned())]);
        assert!(sent.was_sent(alice, one, room, "@bob:x", join));
        assert!(sent.knows(alice, one, room, "@bob:x"));
        // Another device, another event of the same member, another member.
        assert!(!sent.was_sent(alice, two, room, "@bob:x", join));
        assert!(!sent.was_sent(alice, one, room, "@bob:x", leave));
        assert!(!sent.knows(alice, one, room, "@carol:x"));
        sent.forget(alice, one);
        assert!(!sent.was_sent(alice, one, room, "@bob:x", join));
        assert!(!sent.knows(alice, one, room, "@bob:x"));
    }
}
