//! What every firmware binary here shares: exiting QEMU with a status, fault and
//! panic handlers that exit with failure, stack painting, and the benchmark markers.
#![no_std]

pub use cortex_m_semihosting::{hprint, hprintln};

/// Ends the program: QEMU exits with status 0 if `success`, 1 otherwise (semihosting
/// `SYS_EXIT`). On a real board with a debugger attached, the probe sees the same.
pub fn exit(success: bool) -> ! {
    let status = if success {
        cortex_m_semihosting::debug::EXIT_SUCCESS
    } else {
        cortex_m_semihosting::debug::EXIT_FAILURE
    };
    loop {
        cortex_m_semihosting::debug::exit(status);
    }
}

/// Defines the panic handler and the HardFault handler: both print what happened over
/// semihosting and exit with failure (cortex-m-rt's default HardFault loops forever).
#[macro_export]
macro_rules! handlers {
    () => {
        #[panic_handler]
        fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
            $crate::hprintln!("panic: {}", info);
            $crate::exit(false)
        }

        #[cortex_m_rt::exception]
        unsafe fn HardFault(frame: &cortex_m_rt::ExceptionFrame) -> ! {
            $crate::hprintln!("hardfault: pc={:#010x}", frame.pc());
            $crate::exit(false)
        }
    };
}
