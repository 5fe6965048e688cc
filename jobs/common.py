"""Shared by the background jobs: commit the results store and the weights, retrying while another job
holds git's index lock."""
import subprocess
import time


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
