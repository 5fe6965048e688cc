"""Shared by the background jobs: their command line, and committing the results store and the weights
(retrying while another job holds git's index lock)."""
import argparse
import subprocess
import time


def parse_args(doc: str) -> argparse.Namespace:
    """``--profile`` (default cpu) and the tasks, described by the first paragraph of the job's ``doc``."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("tasks", nargs="+")
    return ap.parse_args()


def commit_results(message: str, tries: int = 30) -> None:
    for _ in range(tries):
        subprocess.run(["git", "add", "data/results", "data/weights"], check=False)
        staged = subprocess.run(["git", "diff", "--cached", "--quiet", "--", "data/results", "data/weights"])
        if staged.returncode == 0:
            return  # nothing new (everything came from the store)
        done = subprocess.run(["git", "commit", "-q", "-m", message, "--", "data/results", "data/weights"])
        if done.returncode == 0:
            return
        time.sleep(7)
