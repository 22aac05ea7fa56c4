"""Freed CPU tensors give their memory back to the operating system after
tfastro.core.host_memory.return_freed_tensors_to_os (checked in a fresh process, where the
allocator is still to be chosen)."""
import json
import subprocess
import sys

SCRIPT = """
import json, os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
from tfastro.core.host_memory import return_freed_tensors_to_os
mallopt = return_freed_tensors_to_os()
import tensorflow as tf

def rss():
    with open("/proc/self/status") as status:
        return int(status.read().split("VmRSS:")[1].split()[0]) * 1024

tf.zeros((4,)) + 1.0
before = rss()
x = tf.random.uniform((100, 1000, 1000))  # 400 MB
held = rss()
del x
print(json.dumps({"mallopt": mallopt, "env": os.environ["TF_ONEDNN_USE_SYSTEM_ALLOCATOR"],
                  "held": held - before, "after_free": rss() - before}))
"""


def test_a_freed_tensor_leaves_resident_memory():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         check=True, timeout=300)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["mallopt"] is True and result["env"] == "1"
    assert result["held"] > 350e6  # the tensor was resident
    assert result["after_free"] < 40e6  # and its pages went back when it was freed
