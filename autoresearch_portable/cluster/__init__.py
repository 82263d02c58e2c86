"""Many experiments at once, on Ray: `arp submit`, `arp queue`, `arp wait`.

queue.py   the workspace's persisted queue (results/queue.json): entries and their pure transitions
worker.py  one experiment inside a Ray task: a checkout of its commit, the same run as `arp train`
engine.py  the Ray side: connect or start a cluster, the task's resources, the cluster for `arp doctor`
driver.py  the one process per workspace that feeds Ray from the queue and alone writes the ledger
client.py  what the commands do from the workspace: submit, wait, show the queue, start the driver

Imports go one way: client -> driver -> engine -> (worker, queue) -> harness. Ray itself is imported
only inside functions, so the package works without the `cluster` extra."""
