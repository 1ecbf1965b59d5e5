"""A watcher in its own process, so a test can freeze it (SIGSTOP) like a peer whose host
vanished: its connection stays open, and nothing on it answers."""

import sys

import grpc

from jobq.v1 import job_service_pb2, job_service_pb2_grpc

with grpc.insecure_channel(sys.argv[1]) as channel:
    stub = job_service_pb2_grpc.JobServiceStub(channel)
    request = job_service_pb2.WatchJobRequest(id=sys.argv[2])
    for _ in stub.WatchJob(request, metadata=[("authorization", f"Bearer {sys.argv[3]}")]):
        print("update", flush=True)
