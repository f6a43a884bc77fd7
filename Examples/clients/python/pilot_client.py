"""A small client for the pilot daemon (protocol pilot/1, see docs/protocol.md).

Needs pyzmq (Debian: python3-zmq; PyPI: pyzmq). Signs every request with the
key from the daemon's connection.json and checks the signature of every reply
and event.
"""
import datetime
import hashlib
import hmac
import json
import os
import uuid

import zmq

PROTOCOL = b"pilot/1"
FINAL = {"finished", "failed", "cancelled"}


class PilotError(Exception):
    """An error reply: .code (e.g. 'invalid_workflow'), .message, .details."""

    def __init__(self, error):
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code = error.get("code")
        self.message = error.get("message")
        self.details = error.get("details")


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class PilotClient:
    def __init__(self, connection, timeout=30.0):
        if connection.get("protocol") != "pilot/1" or connection.get("signature_scheme") != "hmac-sha256":
            raise ValueError("not a pilot/1 connection file")
        self.connection = connection
        self.key = bytes.fromhex(connection["key"])
        # Events are signed with the daemon's event key (the request key in older files).
        self.event_key = bytes.fromhex(connection.get("event_key") or connection["key"])
        # A key issued by `pilot keys add NAME` signs as "NAME:HEX".
        self.client = connection.get("client")
        self.timeout_ms = int(timeout * 1000)
        self.context = zmq.Context.instance()
        self.socket = self._socket(zmq.DEALER)
        self.socket.connect(connection["requests"])

    @classmethod
    def from_file(cls, path, **kwargs):
        with open(path) as f:
            return cls(json.load(f), **kwargs)

    @classmethod
    def from_state_dir(cls, state=None, **kwargs):
        state = state or os.path.join(os.path.expanduser("~"), ".local", "state", "pilot")
        return cls.from_file(os.path.join(state, "connection.json"), **kwargs)

    def _socket(self, kind):
        socket = self.context.socket(kind)
        socket.setsockopt(zmq.LINGER, 0)
        server_key = self.connection.get("curve_server_key")
        if server_key:
            # The client's own pair is on the daemon's allow-list; without one, a throwaway pair is refused.
            if self.connection.get("curve_public_key") and self.connection.get("curve_secret_key"):
                public = self.connection["curve_public_key"].encode()
                secret = self.connection["curve_secret_key"].encode()
            else:
                public, secret = zmq.curve_keypair()
            socket.curve_serverkey = server_key.encode()
            socket.curve_publickey = public
            socket.curve_secretkey = secret
        return socket

    # -- signing -------------------------------------------------------------

    @staticmethod
    def _mac(key, frames):
        mac = hmac.new(key, digestmod=hashlib.sha256)
        for frame in frames:
            mac.update(len(frame).to_bytes(8, "big"))
            mac.update(frame)
        return mac.hexdigest().encode()

    def sign(self, frames):
        """The signature frame of a request."""
        mac = self._mac(self.key, frames)
        return (self.client.encode() + b":" + mac) if self.client else mac

    def encode(self, msg_type, content=None, frames=(), parent=None):
        header = {"id": str(uuid.uuid4()), "type": msg_type, "time": _now()}
        if parent:
            header["parent"] = parent
        header_bytes = json.dumps(header).encode()
        content_bytes = json.dumps(content or {}).encode()
        frames = [bytes(f) for f in frames]
        return header["id"], [PROTOCOL, self.sign([header_bytes, content_bytes, *frames]), header_bytes, content_bytes, *frames]

    def decode(self, parts, key=None):
        """A reply (signed with our key) or, with key=self.event_key, an event."""
        if len(parts) < 4 or parts[0] != PROTOCOL:
            raise ValueError("not a pilot/1 message")
        if not hmac.compare_digest(parts[1], self._mac(key or self.key, parts[2:])):
            raise ValueError("bad signature on a message from the daemon")
        return json.loads(parts[2]), json.loads(parts[3]), parts[4:]

    # -- requests ------------------------------------------------------------

    def request(self, msg_type, content=None, frames=()):
        """Sends a request; returns (content, binary frames) or raises PilotError."""
        request_id, parts = self.encode(msg_type, content, frames)
        self.socket.send_multipart(parts)
        while True:
            if not self.socket.poll(self.timeout_ms):
                raise TimeoutError(f"no reply from {self.connection['requests']}")
            header, reply, binaries = self.decode(self.socket.recv_multipart())
            if header.get("parent") != request_id:
                continue
            if reply.get("status") == "error":
                raise PilotError(reply["error"])
            return reply, binaries

    def ping(self):
        return self.request("ping")[0]

    def submit(self, workflow=None, template=None, parameters=None, inputs=None, priority=0, idempotency_key=None,
               preview=None):
        """inputs: name -> bytes (PNG/safetensors) or (filename, bytes); preview: e.g.
        {"every": 5, "method": "latent2rgb", "max_side": 256} for step previews. Returns the job id."""
        content = {"parameters": parameters or {}, "priority": priority, "client": "pilot_client.py"}
        if preview is not None:
            content["preview"] = preview
        if workflow is not None:
            content["workflow"] = workflow
        if template is not None:
            content["template"] = template
        if idempotency_key:
            content["idempotency_key"] = idempotency_key
        frames, references = [], {}
        for name, value in (inputs or {}).items():
            filename, data = value if isinstance(value, tuple) else (None, value)
            references[name] = {"frame": len(frames), "filename": filename} if filename else len(frames)
            frames.append(data)
        content["inputs"] = references
        return self.request("submit", content, frames)[0]["job"]

    def status(self, job):
        return self.request("status", {"job": job})[0]["job"]

    def cancel(self, job):
        return self.request("cancel", {"job": job})[0]["state"]

    # -- the queue -------------------------------------------------------------

    def queue(self, action="status"):
        """The queue: {"paused", "queued", "running", "jobs": [{"id", "position", ...}]};
        action "pause" or "resume" (admin clients) changes it first."""
        return self.request("queue", {"action": action})[0]

    def move(self, job, front=False, priority=None):
        """Moves a queued job to the front (admins) or to another priority; its new position."""
        content = {"job": job}
        if front:
            content["to"] = "front"
        if priority is not None:
            content["priority"] = priority
        return self.request("move", content)[0]["position"]

    def result(self, job):
        """name -> bytes of a finished job's output files."""
        reply, frames = self.request("result", {"job": job})
        return {item["name"]: frames[item["frame"]] for item in reply["outputs"]}

    # -- templates -----------------------------------------------------------

    def save_template(self, name, text):
        """Saves `text` (YAML) as the next version of template `name`; returns {"name", "version", "sha256", ...}."""
        return self.request("template_save", {"name": name, "text": text})[0]["template"]

    def template(self, name, version=None):
        """A template's summary and `text` (a saved version when `version` is given)."""
        content = {"name": name}
        if version is not None:
            content["version"] = version
        return self.request("template", content)[0]["template"]

    def template_history(self, name):
        return self.request("template_history", {"name": name})[0]["versions"]

    def delete_template(self, name):
        return self.request("template_delete", {"name": name})[0]

    # -- events --------------------------------------------------------------

    def subscribe(self, topics, timeout=10.0):
        """A SUB socket subscribed to topics, returned once the daemon's welcome proves it live."""
        socket = self._socket(zmq.SUB)
        for topic in topics:
            socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
        welcome = f"welcome.{uuid.uuid4()}"
        socket.setsockopt(zmq.SUBSCRIBE, welcome.encode())
        socket.connect(self.connection["events"])
        while True:
            if not socket.poll(int(timeout * 1000)):
                raise TimeoutError("no welcome from the event socket")
            parts = socket.recv_multipart()
            if parts[0].decode() != welcome:
                continue
            # Only a welcome signed with the key proves this is our daemon.
            try:
                header, content, _ = self.decode(parts[1:], key=self.event_key)
            except ValueError:
                continue
            if header.get("type") == "welcome" and content.get("topic") == welcome:
                return socket

    def follow(self, job, timeout=600.0):
        """Yields each event of job (its content, with the header's event type as 'type' and a node
        event's node type as 'node_type') until it ends;
        a 'preview' event carries its PNG bytes as 'png'."""
        socket = self.subscribe([job])
        try:
            status = self.status(job)
            seen = status.get("last_event", 0)
            if status["state"] in FINAL:
                return
            while True:
                if not socket.poll(int(timeout * 1000)):
                    raise TimeoutError(f"no event for job {job}")
                parts = socket.recv_multipart()
                header, content, binaries = self.decode(parts[1:], key=self.event_key)
                if content.get("seq", 0) <= seen:
                    continue
                seen = content["seq"]
                event = {**content, "type": header["type"]}
                if "type" in content:  # node events name the node's type; the event's own type wins the key
                    event["node_type"] = content["type"]
                if header["type"] == "preview" and binaries:
                    event["png"] = binaries[0]
                yield event
                if header["type"] in FINAL:
                    return
        finally:
            socket.close()
