// The browser probe: one LiveKit participant driven by lkload over the DevTools protocol.
// lkload calls window.lkprobe.* (Runtime.evaluate) and hears events through the binding
// window.lkprobeEvent (Runtime.addBinding). Times are measured here, in the page, so the
// DevTools round trip is never part of a metric.
"use strict";
(() => {
  const LK = window.LivekitClient;
  const TOPIC = "lkload";
  const FIRST_PACKET_POLL_MS = 50;
  let room = null;
  let identity = "";
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  const waitingFirst = new Map(); // sid -> RemoteTrack whose first packet is not seen yet

  const now = () => Date.now() / 1000;
  const emit = (type, data) => {
    try {
      window.lkprobeEvent(JSON.stringify(Object.assign({ type, at: now() }, data)));
    } catch (e) {
      /* lkload is gone */
    }
  };
  const err = (e) => ({
    name: (e && e.name) || "Error",
    reason: e && e.reason !== undefined ? e.reason : null,
    status: e && e.status !== undefined ? e.status : null,
    message: String((e && e.message) || e),
  });

  async function inbound(track) {
    const receiver = track && track.receiver;
    if (!receiver) return null;
    let found = null;
    (await receiver.getStats()).forEach((s) => {
      if (s.type === "inbound-rtp") found = s;
    });
    return found;
  }

  // first_track_ms ends at the track's first packet, as the other engines: poll its stats
  async function watchFirst(sid, publisher) {
    while (room && waitingFirst.has(sid)) {
      const s = await inbound(waitingFirst.get(sid)).catch(() => null);
      if (s && s.packetsReceived > 0 && waitingFirst.has(sid)) {
        waitingFirst.delete(sid);
        emit("first", { sid, publisher });
        return;
      }
      await new Promise((r) => setTimeout(r, FIRST_PACKET_POLL_MS));
    }
  }

  function wire(r) {
    const E = LK.RoomEvent;
    r.on(E.TrackPublished, (pub, p) =>
      emit("published", { publisher: p.identity, sid: pub.trackSid, kind: pub.kind }),
    );
    r.on(E.TrackSubscribed, (track, pub, p) => {
      // a viewer plays what it receives: audio needs a sink to be played out (and measured)
      const el = track.attach();
      el.muted = track.kind === "video";
      document.body.appendChild(el);
      waitingFirst.set(pub.trackSid, track);
      watchFirst(pub.trackSid, p.identity);
      emit("subscribed", { publisher: p.identity, sid: pub.trackSid, kind: pub.kind });
    });
    const drop = (track, pub, p) => {
      waitingFirst.delete(pub.trackSid);
      if (track) track.detach().forEach((el) => el.remove());
      emit("dropped", { publisher: p.identity, sid: pub.trackSid });
    };
    r.on(E.TrackUnsubscribed, drop);
    r.on(E.TrackUnpublished, (pub, p) => drop(pub.track, pub, p));
    r.on(E.ParticipantDisconnected, (p) => {
      for (const pub of p.trackPublications.values()) drop(pub.track, pub, p);
    });
    r.on(E.TrackMuted, (pub, p) => {
      if (p !== r.localParticipant) emit("muted", { sid: pub.trackSid, muted: true });
    });
    r.on(E.TrackUnmuted, (pub, p) => {
      if (p !== r.localParticipant) emit("muted", { sid: pub.trackSid, muted: false });
    });
    r.on(E.DataReceived, (payload, p, kind, topic) => {
      if (topic === TOPIC) emit("data", { payload: decoder.decode(payload) });
    });
    r.on(E.Disconnected, (reason) => emit("disconnected", { reason: String(reason) }));
  }

  const STATS = [
    "bytesReceived", "packetsReceived", "packetsLost", "jitter", "lastPacketReceivedTimestamp",
    "framesDecoded", "framesReceived", "framesDropped", "freezeCount", "totalFreezesDuration",
    "concealedSamples", "silentConcealedSamples", "totalSamplesReceived",
    "jitterBufferDelay", "jitterBufferEmittedCount", "frameWidth", "frameHeight",
  ];

  window.lkprobe = {
    async join(url, token, o) {
      identity = o.identity;
      room = new LK.Room({
        adaptiveStream: false, // every subscribed track at full quality, as a visible tile
        dynacast: false,
        videoCaptureDefaults: { resolution: { width: o.width, height: o.height, frameRate: o.fps } },
        publishDefaults: {
          videoCodec: o.videoCodec,
          videoEncoding: { maxBitrate: o.videoKbps * 1000, maxFramerate: o.fps },
          audioPreset: { maxBitrate: o.audioKbps * 1000 },
          dtx: false,
        },
      });
      wire(room);
      const options = {
        autoSubscribe: true,
        peerConnectionTimeout: o.timeoutMs,
        websocketTimeout: o.timeoutMs,
      };
      // iceServers [] = none: the server's list (the embedded one hands out a public STUN
      // server) is used only when asked, as the aiortc engine does
      if (!o.useServerIce) options.rtcConfig = { iceServers: [] };
      const t0 = performance.now();
      try {
        await room.connect(url, token, options);
      } catch (e) {
        const r = room;
        room = null;
        r.disconnect().catch(() => {});
        return { ok: false, error: err(e) };
      }
      const joinMs = performance.now() - t0;
      const tracks = [];
      for (const p of room.remoteParticipants.values())
        for (const pub of p.trackPublications.values())
          tracks.push({ publisher: p.identity, sid: pub.trackSid, kind: pub.kind });
      // who we are, for the others: never lkload.clock=capture (libwebrtc's sender reports
      // do not map RTP time to capture time: nobody takes media_e2e_ms from our tracks)
      room.localParticipant.setAttributes({ "lkload.engine": "browser" }).catch(() => {});
      return { ok: true, joinMs, tracks };
    },

    async publish(kind) {
      try {
        const track =
          kind === "audio"
            ? await LK.createLocalAudioTrack({ autoGainControl: false, noiseSuppression: false })
            : await LK.createLocalVideoTrack();
        const t0 = performance.now();
        const pub = await room.localParticipant.publishTrack(track);
        return { ok: true, ms: performance.now() - t0, sid: pub.trackSid };
      } catch (e) {
        return { ok: false, error: err(e) };
      }
    },

    // data_e2e_ms: a reliable message every intervalMs, stamped here at the send; a send
    // that fails or takes more than 5 s is one "sendFailed" event and its number is reused
    startData(intervalMs) {
      let seq = 0;
      const tick = async () => {
        if (!room) return;
        const msg = JSON.stringify({ lkload: 1, from: identity, seq: seq + 1, t: now() });
        let timer = null;
        const late = new Promise((_, reject) => {
          timer = setTimeout(() => reject(Object.assign(new Error("not sent within 5 s"), { name: "Timeout" })), 5000);
        });
        try {
          await Promise.race([
            room.localParticipant.publishData(encoder.encode(msg), { reliable: true, topic: TOPIC }),
            late,
          ]);
          seq += 1;
        } catch (e) {
          if (room) emit("sendFailed", { error: err(e) });
        } finally {
          clearTimeout(timer);
        }
        if (room) setTimeout(tick, intervalMs);
      };
      setTimeout(tick, intervalMs);
      return true;
    },

    async stats() {
      const out = [];
      if (!room) return { at: now(), tracks: out };
      for (const p of room.remoteParticipants.values()) {
        for (const pub of p.trackPublications.values()) {
          const s = await inbound(pub.track).catch(() => null);
          if (!s) continue;
          const picked = {};
          for (const k of STATS) if (s[k] !== undefined) picked[k] = s[k];
          out.push({
            publisher: p.identity, sid: pub.trackSid, kind: pub.kind,
            muted: pub.isMuted, engine: p.attributes["lkload.engine"] || "", s: picked,
          });
        }
      }
      return { at: now(), tracks: out };
    },

    async leave() {
      const r = room;
      room = null;
      waitingFirst.clear();
      if (r) await r.disconnect();
      return true;
    },
  };
})();
