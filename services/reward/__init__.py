"""The reward microservice: FastAPI app scoring responses with ovr's registered rewards."""
