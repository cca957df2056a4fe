"""Push delivery: values, outcomes, the outbox, the dispatcher and the APNs/FCM senders."""
