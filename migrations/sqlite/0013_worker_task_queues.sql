-- The queue a worker serves each of its task types on ({"type": "queue"}, JSON), so a submit
-- that names a type and no queue goes where a live worker leases it, not to `default`.
-- depends: 0007_schedules

ALTER TABLE workers ADD COLUMN task_queues TEXT NOT NULL DEFAULT '{}';
