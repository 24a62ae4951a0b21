"""Multimodal RL with verifiable rewards: PPO with a critic (the OVR recipe) and the GRPO family."""
