-- One run of a job at a time, scheduled or asked for (slot RUN), and one run asked for and not
-- finished (slot REQUEST): who holds each, until when.
CREATE TABLE job_slots (
  job TEXT NOT NULL,
  slot TEXT NOT NULL,
  holder TEXT NOT NULL,
  until TEXT NOT NULL,
  PRIMARY KEY (job, slot)
);
