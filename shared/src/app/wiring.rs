//! Building the use cases from the ports: the one place that sees the whole store. Each service
//! keeps only the roles it names (its fields); a function builds only the services it serves.

use std::sync::Arc;

use super::*;
use crate::config::Settings;
use crate::domain::Job;
use crate::ports::{Clock, JobStarter, Queue, Store, Telegram};

/// What the services are built from: the store (one adapter implements every role), the other
/// ports and the settings. A Lambda function is given only the ports its services use: building
/// a service without one of them is refused when the function starts (`Missing`), never later.
#[derive(Clone)]
pub struct Ports {
    pub settings: Arc<Settings>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    /// The effects queue.
    pub queue: Option<Arc<dyn Queue>>,
    /// The Bot API, at the bot's pace.
    pub telegram: Option<Arc<dyn Telegram>>,
    /// Where the job runs an admin asks for are started.
    pub jobs: Option<Arc<dyn JobStarter>>,
}

/// A service asked of ports that lack one it needs: a wiring mistake, found at start.
#[derive(Debug, thiserror::Error)]
#[error("the {0} port is not given to this process, and a service it builds needs it")]
pub struct Missing(pub &'static str);

fn given<T: ?Sized>(port: &Option<Arc<T>>, name: &'static str) -> Result<Arc<T>, Missing> {
    port.clone().ok_or(Missing(name))
}

impl Ports {
    fn auditor(&self) -> Result<Auditor, Missing> {
        Ok(Auditor {
            audit_log: self.store.clone(),
            clock: self.clock.clone(),
            queue: given(&self.queue, "queue")?,
            stats: self.store.clone(),
        })
    }

    fn notifier(&self) -> Result<Notifier, Missing> {
        Ok(Notifier {
            clock: self.clock.clone(),
            notifications: self.store.clone(),
            payments: self.store.clone(),
            queue: given(&self.queue, "queue")?,
        })
    }

    pub fn issuer(&self) -> Result<Issuer, Missing> {
        Ok(Issuer {
            access: self.store.clone(),
            auditor: self.auditor()?,
            clock: self.clock.clone(),
            limits: self.store.clone(),
            notifier: self.notifier()?,
            payments: self.store.clone(),
            settings: self.settings.clone(),
        })
    }

    pub fn admission(&self) -> Result<Admission, Missing> {
        Ok(Admission {
            access: self.store.clone(),
            auditor: self.auditor()?,
            bars: self.store.clone(),
            clock: self.clock.clone(),
            limits: self.store.clone(),
            payments: self.store.clone(),
            settings: self.settings.clone(),
            telegram: given(&self.telegram, "Telegram")?,
        })
    }

    pub fn inbox(&self) -> Result<Inbox, Missing> {
        Ok(Inbox { clock: self.clock.clone(), notifications: self.store.clone() })
    }

    pub fn status(&self) -> Result<Status, Missing> {
        Ok(Status { access: self.store.clone(), clock: self.clock.clone(), settings: self.settings.clone() })
    }

    pub fn payment_desk(&self) -> Result<PaymentDesk, Missing> {
        Ok(PaymentDesk {
            auditor: self.auditor()?,
            clock: self.clock.clone(),
            issuer: Arc::new(self.issuer()?),
            notifier: self.notifier()?,
            payments: self.store.clone(),
            settings: self.settings.clone(),
        })
    }

    pub fn ending(&self) -> Result<Ending, Missing> {
        Ok(Ending {
            access: self.store.clone(),
            auditor: self.auditor()?,
            clock: self.clock.clone(),
            lifecycle: self.store.clone(),
            notifier: self.notifier()?,
            payments: self.store.clone(),
            queue: given(&self.queue, "queue")?,
            settings: self.settings.clone(),
            stats: self.store.clone(),
        })
    }

    pub fn refunds(&self) -> Result<Refunds, Missing> {
        Ok(Refunds {
            auditor: self.auditor()?,
            clock: self.clock.clone(),
            ending: Arc::new(self.ending()?),
            notifier: self.notifier()?,
            payments: self.store.clone(),
        })
    }

    pub fn admin(&self) -> Result<Admin, Missing> {
        Ok(Admin {
            access: self.store.clone(),
            lifecycle: self.store.clone(),
            audit_log: self.store.clone(),
            auditor: self.auditor()?,
            bars: self.store.clone(),
            clock: self.clock.clone(),
            notifications: self.store.clone(),
            payments: self.store.clone(),
            stats: self.store.clone(),
        })
    }

    pub fn sales(&self) -> Result<Sales, Missing> {
        Ok(Sales {
            clock: self.clock.clone(),
            invoices: self.store.clone(),
            limits: self.store.clone(),
            settings: self.settings.clone(),
            telegram: given(&self.telegram, "Telegram")?,
        })
    }

    pub fn stars(&self) -> Result<Stars, Missing> {
        Ok(Stars {
            access: self.store.clone(),
            admission: Arc::new(self.admission()?),
            auditor: self.auditor()?,
            bars: self.store.clone(),
            clock: self.clock.clone(),
            issuer: Arc::new(self.issuer()?),
            job_log: self.store.clone(),
            limits: self.store.clone(),
            notifier: self.notifier()?,
            payments: self.store.clone(),
            refunds: Arc::new(self.refunds()?),
            sales: Arc::new(self.sales()?),
            settings: self.settings.clone(),
            stats: self.store.clone(),
            telegram: given(&self.telegram, "Telegram")?,
        })
    }

    pub fn members(&self) -> Result<Members, Missing> {
        Ok(Members {
            access: self.store.clone(),
            auditor: self.auditor()?,
            bars: self.store.clone(),
            clock: self.clock.clone(),
            lifecycle: self.store.clone(),
            notifier: self.notifier()?,
            payments: self.store.clone(),
            settings: self.settings.clone(),
        })
    }

    pub fn jobs(&self) -> Result<Jobs, Missing> {
        Ok(Jobs {
            access: self.store.clone(),
            auditor: self.auditor()?,
            clock: self.clock.clone(),
            ending: Arc::new(self.ending()?),
            exemptions: self.store.clone(),
            job_log: self.store.clone(),
            lifecycle: self.store.clone(),
            notifications: self.store.clone(),
            notifier: self.notifier()?,
            outbox: self.store.clone(),
            queue: given(&self.queue, "queue")?,
            settings: self.settings.clone(),
            stars: Arc::new(self.stars()?),
            stats: self.store.clone(),
            telegram: given(&self.telegram, "Telegram")?,
        })
    }

    /// The console's health panel: a bot is not required (without one, it says so).
    pub fn health(&self) -> Health {
        Health {
            clock: self.clock.clone(),
            outbox: self.store.clone(),
            job_log: self.store.clone(),
            telegram: self.telegram.clone(),
            schedules: Job::ALL.into_iter().map(|job| (job, self.settings.schedule(job))).collect(),
            channel_seen: std::sync::Mutex::default(),
        }
    }

    pub fn job_runs(&self) -> Result<JobRuns, Missing> {
        Ok(JobRuns {
            clock: self.clock.clone(),
            job_log: self.store.clone(),
            starter: given(&self.jobs, "job starter")?,
        })
    }

    pub fn staff_roles(&self) -> Result<StaffRoles, Missing> {
        Ok(StaffRoles {
            staff: self.settings.staff.clone(),
            telegram: given(&self.telegram, "Telegram")?,
            clock: self.clock.clone(),
            administrators: std::sync::Mutex::default(),
        })
    }

    pub fn bot(&self) -> Result<Bot, Missing> {
        Ok(Bot {
            access: self.store.clone(),
            admission: Arc::new(self.admission()?),
            bars: self.store.clone(),
            clock: self.clock.clone(),
            members: Arc::new(self.members()?),
            sales: Arc::new(self.sales()?),
            settings: self.settings.clone(),
            staff: Arc::new(self.staff_roles()?),
            stars: Arc::new(self.stars()?),
            status: Arc::new(self.status()?),
            telegram: given(&self.telegram, "Telegram")?,
            update_log: self.store.clone(),
        })
    }
}

/// The effects consumer, carrying out effects with `runner` (built before the queue it consumes,
/// hence not from `Ports`).
pub fn consumer(runner: effects::EffectRunner, store: &Arc<dyn Store>, clock: Arc<dyn Clock>) -> effects::Consumer {
    effects::Consumer {
        runner,
        effect_log: store.clone(),
        outbox: store.clone(),
        payments: store.clone(),
        access: store.clone(),
        bars: store.clone(),
        exemptions: store.clone(),
        audit_log: store.clone(),
        clock,
    }
}

impl App {
    pub fn new(ports: &Ports) -> Result<Self, Missing> {
        Ok(Self {
            settings: ports.settings.clone(),
            payments: Arc::new(ports.payment_desk()?),
            issuer: Arc::new(ports.issuer()?),
            inbox: Arc::new(ports.inbox()?),
            status: Arc::new(ports.status()?),
            ending: Arc::new(ports.ending()?),
            refunds: Arc::new(ports.refunds()?),
            admin: Arc::new(ports.admin()?),
            jobs: Arc::new(ports.jobs()?),
            job_runs: Arc::new(ports.job_runs()?),
            bot: Arc::new(ports.bot()?),
            health: Arc::new(ports.health()),
        })
    }
}
