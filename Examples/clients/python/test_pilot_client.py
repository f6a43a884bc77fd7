"""Runs the Python client against a real daemon.

Usage: test_pilot_client.py CONNECTION_FILE TINY_MODEL EXAMPLES_DIR
(the Swift test PythonClientTests starts the daemon and runs this).
"""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pilot_client import PilotClient, PilotError  # noqa: E402

CONNECTION, TINY, EXAMPLES = sys.argv[1:4]


def read(name):
    with open(os.path.join(EXAMPLES, name), "rb") as f:
        return f.read()


class PilotClientTest(unittest.TestCase):
    def setUp(self):
        self.client = PilotClient.from_file(CONNECTION, timeout=60)

    def test_ping_reports_the_protocol(self):
        self.assertEqual(self.client.ping()["protocol"], "pilot/1")

    def test_template_job_runs_to_a_png_with_ordered_events(self):
        job = self.client.submit(
            template="text-inpaint",
            parameters={"checkpoint": TINY, "steps": 4, "interval": 2, "inner_steps": 1, "prompt": "a red ball"},
            inputs={"image": ("source.png", read("source.png")), "mask": read("mask.png")},
            preview={"every": 2, "max_side": 32})
        events = list(self.client.follow(job, timeout=120))
        self.assertEqual(events[-1]["type"], "finished", f"expected the job to finish, got {events[-1]}")
        seqs = [e["seq"] for e in events]
        self.assertEqual(seqs, sorted(seqs), "expected events in sequence order")
        previews = [e for e in events if e["type"] == "preview"]
        self.assertTrue(previews, f"expected preview events for a job that asked for them; events: {[e['type'] for e in events]}")
        for preview in previews:
            self.assertTrue(preview["png"].startswith(b"\x89PNG\r\n\x1a\n"), f"expected a PNG frame with {preview}")
            self.assertLessEqual(max(preview["width"], preview["height"]), 32, "expected max_side 32 to bound it")
        self.assertEqual(self.client.status(job)["preview"], {"every": 2, "method": "latent2rgb", "max_side": 32})
        outputs = self.client.result(job)
        self.assertEqual(list(outputs), ["text-inpaint.png"])
        self.assertTrue(outputs["text-inpaint.png"].startswith(b"\x89PNG\r\n\x1a\n"), "expected PNG bytes")

    def test_the_queue_pauses_reorders_and_resumes(self):
        copy = ("version: 1\ninputs:\n  picture: {type: Image}\n"
                "nodes:\n  save: {type: SaveImage, inputs: {image: $picture}, params: {name: queued}}\n")
        self.assertTrue(self.client.queue("pause")["paused"], "expected the queue paused")
        try:
            first = self.client.submit(workflow=copy, inputs={"picture": read("source.png")})
            second = self.client.submit(workflow=copy, inputs={"picture": read("source.png")})
            self.assertEqual(self.client.move(second, front=True), 0, "expected the moved job first")
            listed = [job["id"] for job in self.client.queue()["jobs"]]
            self.assertEqual(listed[:2], [second, first], "expected the queue in its new order")
        finally:
            self.assertFalse(self.client.queue("resume")["paused"], "expected the queue resumed")
        for job in (first, second):
            deadline = time.time() + 120
            while self.client.status(job)["state"] in ("queued", "running") and time.time() < deadline:
                time.sleep(0.05)
            self.assertEqual(self.client.status(job)["state"], "finished", "expected the job run once resumed")

    def test_errors_come_back_structured(self):
        with self.assertRaises(PilotError) as caught:
            self.client.submit(workflow="version: 1\nnodes:\n  a: {type: NoSuchNode}\n")
        self.assertEqual(caught.exception.code, "invalid_workflow")
        self.assertEqual(caught.exception.details[0]["node"], "a")
        with self.assertRaises(PilotError) as caught:
            self.client.status("no-such-job")
        self.assertEqual(caught.exception.code, "not_found")

    def test_templates_are_saved_versioned_and_run_by_name(self):
        text = ("version: 1\ninputs:\n  image: {type: Path}\nnodes:\n  load: {type: LoadImage, params: {path: $image}}\n"
                "  save: {type: SaveImage, inputs: {image: load.image}, params: {name: py-copy}}\n")
        first = self.client.save_template("py-copy", text)
        second = self.client.save_template("py-copy", text.replace("py-copy}", "py-copy-2}"))
        self.assertEqual(second["version"], first["version"] + 1)
        self.assertEqual([v["version"] for v in self.client.template_history("py-copy")][-2:],
                         [first["version"], second["version"]])
        self.assertEqual(self.client.template("py-copy", version=first["version"])["text"], text)
        job = self.client.submit(template="py-copy", inputs={"image": read("source.png")})
        list(self.client.follow(job, timeout=120))
        self.assertEqual(self.client.status(job)["template_version"], second["version"])
        self.assertEqual(list(self.client.result(job)), ["py-copy-2.png"])
        self.assertTrue(self.client.delete_template("py-copy")["deleted"])
        with self.assertRaises(PilotError) as caught:
            self.client.save_template("py-bad", "version: 1\nnodes:\n  a: {type: NoSuchNode}\n")
        self.assertEqual(caught.exception.code, "invalid_workflow")

    def test_a_wrong_key_is_refused(self):
        other = PilotClient(dict(self.client.connection, key="00" * 32), timeout=10)
        # The reply is signed with the daemon's key, which this client does not have.
        _, parts = other.encode("ping")
        other.socket.send_multipart(parts)
        self.assertTrue(other.socket.poll(10000), "expected an error reply")
        reply = other.socket.recv_multipart()
        self.assertIn(b'"bad_signature"', reply[3])

    def test_a_welcome_signed_with_another_key_is_not_accepted(self):
        # Subscribing with the wrong key: the daemon's welcome does not verify,
        # so the client keeps waiting instead of trusting the event socket.
        other = PilotClient(dict(self.client.connection, key="00" * 32, event_key="00" * 32), timeout=10)
        with self.assertRaises(TimeoutError):
            other.subscribe(["job"], timeout=1.0)
        self.client.subscribe(["job"], timeout=10.0).close()

    def test_an_issued_client_signs_with_its_name_and_sees_only_its_own_jobs(self):
        # The owner (this connection file) issues a user client; its file works from Python as is.
        name = f"py-{os.getpid()}"
        reply, _ = self.client.request("client_add", {"name": name, "max_queued": 2})
        issued = PilotClient(reply["connection"], timeout=30)
        self.assertEqual(issued.ping()["client"], {"name": name, "role": "user"})
        copy = ("version: 1\ninputs:\n  image: {type: Path}\nnodes:\n  load: {type: LoadImage, params: {path: $image}}\n"
                "  save: {type: SaveImage, inputs: {image: load.image}, params: {name: copy}}\n")
        image = {"image": os.path.join(EXAMPLES, "source.png")}
        theirs = issued.submit(workflow=copy, parameters=image)
        self.assertEqual(self.client.status(theirs)["owner"], name, "expected the owner to see every job")
        mine = self.client.submit(workflow=copy, parameters=image)
        with self.assertRaises(PilotError) as caught:
            issued.status(mine)
        self.assertEqual(caught.exception.code, "not_found", "expected another client's job to read as missing")
        with self.assertRaises(PilotError) as caught:
            issued.request("clients")
        self.assertEqual(caught.exception.code, "forbidden")
        self.client.request("client_revoke", {"name": name})
        with self.assertRaises(ValueError):
            issued.ping()  # the refusal is signed with the owner's key, which the revoked client cannot verify


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
