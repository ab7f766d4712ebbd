"""Pictures to an S3-compatible object store ([upload]), after they are on local disk.

`keys.py` names each picture's object, `queue.py` keeps the journal's
`uploads` table (a row per saved picture, in the commit of its capture
row), `store.py` is the one adapter to the S3 client library (minio), and
`worker.py` is the thread that drains the queue with back-off, releases
pictures to local retention once stored, and announces each upload on MQTT.
A capture never waits for the network: it only adds a row.
"""
