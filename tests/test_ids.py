"""Hot-path identifiers: random bytes read from the OS 4 KiB at a time, each handed out
once, a forked child never repeating its parent's."""

from __future__ import annotations

import os
import re
import threading

from eyetok import ids as ids_module
from eyetok.http.hooks import new_signal_id
from eyetok.ids import random_hex
from eyetok.incidents import new_incident_id


def test_ids_have_the_shape_they_had() -> None:
    assert re.fullmatch(r"sig_[0-9a-f]{20}", new_signal_id())
    assert re.fullmatch(r"inc_[0-9a-f]{16}", new_incident_id())
    assert len(random_hex(5000)) == 10000  # past one read: straight from the OS


def test_no_id_repeats_across_many_reads_and_threads() -> None:
    seen: list[str] = []
    lock = threading.Lock()

    def make() -> None:
        made = [random_hex(10) for _ in range(5_000)]  # ~12 reads of 4 KiB each
        with lock:
            seen.extend(made)

    threads = [threading.Thread(target=make) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 20_000
    assert len(set(seen)) == 20_000


def test_a_forked_child_does_not_repeat_the_parents_bytes() -> None:
    random_hex(1)  # the parent holds a partly used read
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, then out without cleanup
        os.write(write, random_hex(16).encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    parent = random_hex(16)
    assert len(child) == 32
    assert child != parent


def test_ids_of_every_length_across_reads_never_share_bytes() -> None:
    """Each id takes its own 16-byte slot of a read, whatever its length, and a read that
    runs out (or one another thread replaced) makes a new one: across several reads, no
    two ids start alike, each has the length asked, and past 16 bytes they come whole
    from the OS."""
    made = [random_hex(4 + i % 13) for i in range(3 * ids_module._SLOTS + 7)]
    assert [len(h) for h in made] == [2 * (4 + i % 13) for i in range(len(made))]
    assert len({h[:8] for h in made}) == len(made)  # two ids on one slot would start alike
    stale = ids_module._SOURCE._read  # a thread that read this tuple before a new read
    fresh = random_hex(16)
    ids_module._SOURCE._read = stale  # ... and put back an older one: its slots move on
    assert random_hex(16) not in (fresh, stale[1][:32])
    assert len(random_hex(17)) == 34
