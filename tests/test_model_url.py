"""--initial_model URLs against hostile servers and shared caches (a loopback server, 127.0.0.1 only):
a server that keeps closing the connection early ends in one line and leaves nothing under the
cached name; a body shorter than its Content-Length is resumed, not cached short; two runs fetching
into one cache at once download once and both get the complete file."""

import threading

import pytest

from http_server import FakeServer
from voxtrainer.inference import remote
from voxtrainer.data import download
from voxtrainer.errors import InputError

MODEL = bytes(range(256)) * 400  # any bytes: the cache does not read them


class EveryTime(dict):
    """A FakeServer fault table whose faults are not used up: pop() leaves the entry."""

    def pop(self, key, *default):
        return self[key]


@pytest.fixture
def no_waiting(monkeypatch):
    monkeypatch.setattr(download.time, "sleep", lambda seconds: None)


def test_a_server_that_always_closes_early_is_one_line_and_caches_nothing(tmp_path, no_waiting):
    with FakeServer({"/m.model": MODEL}) as server:
        server.drop_after = EveryTime({"/m.model": 0})  # headers with a Content-Length, then no body
        with pytest.raises(InputError) as refused:
            remote.local_model(server.url("/m.model"), str(tmp_path), "", retries=2)
    assert "\n" not in refused.value.line and "giving up" in refused.value.line
    assert "re-run the same command to resume" in refused.value.line
    assert [path.name for path in tmp_path.iterdir()] in ([], [remote.cached_name(server.url("/m.model")) +
                                                               download.DOWNLOAD_SUFFIX])


def test_a_body_shorter_than_its_content_length_is_resumed_not_cached_short(tmp_path, no_waiting):
    with FakeServer({"/m.model": MODEL}) as server:
        server.drop_after["/m.model"] = 1000
        path = remote.local_model(server.url("/m.model"), str(tmp_path), "")
        ranges = [request[1] for request in server.part_requests("m.model")]
    assert open(path, "rb").read() == MODEL
    assert ranges == [None, "bytes=1000-"]


def test_two_runs_sharing_a_cache_download_once_and_both_get_the_whole_file(tmp_path):
    results, errors = {}, []
    with FakeServer({"/m.model": MODEL}) as server:
        url = server.url("/m.model")
        # The first body is held back a while: without a lock the second run's request comes in
        # meanwhile, and both write the same partial download.
        server.before_body["/m.model"] = lambda: threading.Event().wait(0.5)

        def run(name):
            try:
                results[name] = remote.local_model(url, str(tmp_path), "")
            except Exception as error:  # reported by the assertions below
                errors.append(error)
        first = threading.Thread(target=run, args=("first",))
        first.start()
        while not server.requests:
            threading.Event().wait(0.01)
        second = threading.Thread(target=run, args=("second",))
        second.start()
        first.join(timeout=30)
        second.join(timeout=30)
        requests = len(server.part_requests("m.model"))
    assert not errors, errors
    assert results["first"] == results["second"]
    assert open(results["first"], "rb").read() == MODEL
    assert requests == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == [remote.cached_name(url)]
