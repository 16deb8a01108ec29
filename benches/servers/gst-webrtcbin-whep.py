#!/usr/bin/python3
"""A WHEP server made of GStreamer's webrtcbin: the independent baseline edgedesk-bench
compares against, and the server its "any WHEP server" tests measure.

    /usr/bin/python3 benches/servers/gst-webrtcbin-whep.py --display :N [--listen 127.0.0.1:0]
        [--fps 60] [--bitrate 8000] [--codec h264|vp8]

Prints `listening http://HOST:PORT/whep` on stdout once it serves. Each POSTed offer gets its own
pipeline, the low-latency one people build for desktops:

    ximagesrc (X display, no damage tracking, no pointer) ! videoconvert ! I420
      ! x264enc tune=zerolatency speed-preset=ultrafast (or vp8enc deadline=1)
      ! rtp payloader (the offer's payload type) ! webrtcbin (max-bundle)

The answer is sent once ICE gathering is complete (no trickle); its candidates are the
interfaces libnice finds (never loopback). DELETE on the Location ends the pipeline; so does
SIGTERM/SIGINT for all of them. Needs Debian's python3-gi, gir1.2-gst-plugins-bad-1.0,
gstreamer1.0-{plugins-base,plugins-good,plugins-bad,plugins-ugly,nice,x}.
"""

import argparse
import re
import signal
import socketserver
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import Gst, GstSdp, GstWebRTC  # noqa: E402

ENCODERS = {
    "h264": (
        "H264",
        "x264enc tune=zerolatency speed-preset=ultrafast bitrate={kbps} key-int-max={gop} "
        "threads=2 ! video/x-h264,profile=constrained-baseline "
        "! rtph264pay config-interval=-1 aggregate-mode=zero-latency pt={pt}",
    ),
    "vp8": (
        "VP8",
        "vp8enc deadline=1 target-bitrate={bps} keyframe-max-dist={gop} threads=2 "
        "error-resilient=partitions lag-in-frames=0 ! rtpvp8pay pt={pt}",
    ),
}


def offered_payload_type(sdp, encoding):
    """The first payload type the offer's video section gives `encoding` (e.g. H264)."""
    video = re.search(r"^m=video .*?(?=^m=|\Z)", sdp, re.M | re.S)
    if not video:
        raise ValueError("the offer has no video section")
    for pt, name in re.findall(r"^a=rtpmap:(\d+) ([A-Za-z0-9]+)/90000", video.group(0), re.M):
        if name.upper() == encoding:
            return int(pt)
    raise ValueError(f"the offer does not offer {encoding}")


def wait_promise(emit):
    promise = Gst.Promise.new()
    emit(promise)
    promise.wait()
    return promise.get_reply()


class Viewer:
    def __init__(self, args, offer):
        encoding, enc = ENCODERS[args.codec]
        pt = offered_payload_type(offer, encoding)
        gop = args.fps * 10
        desc = (
            f"ximagesrc display-name={args.display} use-damage=false show-pointer=false "
            f"! video/x-raw,framerate={args.fps}/1 ! queue max-size-buffers=1 leaky=downstream "
            f"! videoconvert ! video/x-raw,format=I420 ! "
            + enc.format(kbps=args.bitrate, bps=args.bitrate * 1000, gop=gop, pt=pt)
            + f" ! application/x-rtp,media=video,encoding-name={encoding},payload={pt},"
            "clock-rate=90000 ! webrtcbin name=webrtc bundle-policy=max-bundle"
        )
        self.pipeline = Gst.parse_launch(desc)
        self.webrtc = self.pipeline.get_by_name("webrtc")
        self.pipeline.set_state(Gst.State.PLAYING)
        for i in range(8):
            t = self.webrtc.emit("get-transceiver", i)
            if t is None:
                break
            t.set_property("direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)
        _, msg = GstSdp.SDPMessage.new_from_text(offer)
        remote = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.OFFER, msg)
        wait_promise(lambda p: self.webrtc.emit("set-remote-description", remote, p))
        reply = wait_promise(lambda p: self.webrtc.emit("create-answer", None, p))
        answer = reply.get_value("answer") if reply else None
        if answer is None:
            raise ValueError(f"webrtcbin made no answer: {reply}")
        wait_promise(lambda p: self.webrtc.emit("set-local-description", answer, p))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            state = self.webrtc.get_property("ice-gathering-state")
            if state == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
                break
            time.sleep(0.02)
        self.answer = self.webrtc.get_property("local-description").sdp.as_text()

    def stop(self):
        self.pipeline.set_state(Gst.State.NULL)


def warm_up(args):
    """One throwaway negotiation, answered by a Viewer: loads the plugins and makes the DTLS
    certificate before the first real client. Without it, Chromium's first connection to a
    fresh server was seen to stay in DTLS "connecting" for good (ICE connected)."""
    encoding = ENCODERS[args.codec][0]
    offerer = Gst.Pipeline.new("warm-up")
    w = Gst.ElementFactory.make("webrtcbin", "w")
    w.set_property("bundle-policy", GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
    offerer.add(w)
    offerer.set_state(Gst.State.PLAYING)
    caps = Gst.Caps.from_string(
        f"application/x-rtp,media=video,encoding-name={encoding},payload=96,clock-rate=90000"
    )
    w.emit("add-transceiver", GstWebRTC.WebRTCRTPTransceiverDirection.RECVONLY, caps)
    reply = wait_promise(lambda p: w.emit("create-offer", None, p))
    offer = reply.get_value("offer")
    wait_promise(lambda p: w.emit("set-local-description", offer, p))
    viewer = Viewer(args, offer.sdp.as_text())
    viewer.stop()
    offerer.set_state(Gst.State.NULL)


class Server:
    def __init__(self, args):
        self.args = args
        self.viewers = {}
        self.lock = threading.Lock()

    def stop_all(self):
        with self.lock:
            viewers, self.viewers = list(self.viewers.values()), {}
        for v in viewers:
            v.stop()


def handler_for(server):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            sys.stderr.write("gst-whep: " + (fmt % a) + "\n")

        def reply(self, code, body=b"", headers=()):
            self.send_response(code)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_OPTIONS(self):
            self.reply(204, headers=[("Accept-Post", "application/sdp")])

        def do_POST(self):
            if self.path.rstrip("/") != "/whep":
                return self.reply(404, b"not found\n")
            length = int(self.headers.get("Content-Length", 0))
            offer = self.rfile.read(length).decode("utf-8", "replace")
            try:
                viewer = Viewer(server.args, offer)
            except (ValueError, GLibError) as e:
                return self.reply(400, f"{e}\n".encode())
            vid = uuid.uuid4().hex
            with server.lock:
                server.viewers[vid] = viewer
            self.reply(
                201,
                viewer.answer.encode(),
                [("Content-Type", "application/sdp"), ("Location", f"/whep/{vid}")],
            )

        def do_DELETE(self):
            vid = self.path.rsplit("/", 1)[-1]
            with server.lock:
                viewer = server.viewers.pop(vid, None)
            if viewer is None:
                return self.reply(404, b"no such viewer\n")
            viewer.stop()
            self.reply(200)

    return Handler


GLibError = gi.repository.GLib.Error


class HTTPServer(ThreadingHTTPServer):
    def server_bind(self):
        # http.server looks up the bound address' host name (getfqdn): in a network namespace
        # without a resolver that takes seconds. The name is not needed.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--display", required=True)
    p.add_argument("--listen", default="127.0.0.1:0")
    p.add_argument("--fps", type=int, default=60)
    p.add_argument("--bitrate", type=int, default=8000, help="kbit/s")
    p.add_argument("--codec", choices=sorted(ENCODERS), default="h264")
    args = p.parse_args()
    Gst.init(None)
    for element in ("webrtcbin", "ximagesrc", "nicesrc", "x264enc" if args.codec == "h264" else "vp8enc"):
        if Gst.ElementFactory.find(element) is None:
            sys.exit(f"gst-whep: GStreamer element {element} is missing (see this file's header)")
    warm_up(args)
    host, port = args.listen.rsplit(":", 1)
    server = Server(args)
    httpd = HTTPServer((host, int(port)), handler_for(server))

    def end(*_):
        server.stop_all()
        sys.exit(0)

    signal.signal(signal.SIGTERM, end)
    signal.signal(signal.SIGINT, end)
    bound_host, bound_port = httpd.server_address[:2]
    print(f"listening http://{bound_host}:{bound_port}/whep", flush=True)
    try:
        httpd.serve_forever()
    finally:
        server.stop_all()


if __name__ == "__main__":
    main()
