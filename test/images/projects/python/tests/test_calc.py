import os
import signal
import subprocess
import unittest

from calc import parallel_squares, square


class CalcTest(unittest.TestCase):
    def test_square(self):
        self.assertEqual(square(12), 144)

    def test_processes(self):
        self.assertEqual(parallel_squares(10)[-1], 81)

    def test_fork_pipe_signal(self):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            os.write(w, b"from the child")
            signal.pause()
        os.close(w)
        self.assertEqual(os.read(r, 100), b"from the child")
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.WTERMSIG(status), signal.SIGTERM)
        self.assertEqual(subprocess.run(["sh", "-c", "echo exec ok"], capture_output=True, text=True).stdout, "exec ok\n")


if __name__ == "__main__":
    unittest.main()
