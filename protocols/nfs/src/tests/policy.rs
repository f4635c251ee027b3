//! MOUNT and export options end to end.

use super::*;

#[tokio::test]
async fn mount_gives_the_volume_root_and_export_lists_volumes() {
    let h = start(ExportPolicy::default()).await;
    h.fs.create_volume("data").expect("volume");
    let mut c = Client::connect(h.addr).await;
    let root = c.root().await;
    let Nfs3Result::Ok(attr) = c.getattr(&root).await else {
        panic!("getattr of the root failed");
    };
    assert_eq!(attr.obj_attributes.type_, ftype3::NF3DIR);
    assert_eq!(
        attr.obj_attributes.fileid,
        h.fs.volume("default").expect("vol").root
    );

    assert!(matches!(
        c.mount("/missing").await,
        mountres3::Err(nfs3_types::mount::mountstat3::MNT3ERR_NOENT)
    ));
    assert!(matches!(
        c.mount("/default/nope").await,
        mountres3::Err(nfs3_types::mount::mountstat3::MNT3ERR_NOENT)
    ));

    // A subdirectory mounts too; a file does not.
    let made = c.mkdir(&root, "sub").await;
    assert_eq!(stat_of(&made), nfsstat3::NFS3_OK);
    assert!(matches!(c.mount("/default/sub").await, mountres3::Ok(_)));
    c.create_file(&root, "plain").await;
    assert!(matches!(
        c.mount("/default/plain").await,
        mountres3::Err(nfs3_types::mount::mountstat3::MNT3ERR_NOTDIR)
    ));

    let list: exports = c.call(100_005, 5, &nfs3_types::xdr_codec::Void).await;
    let names: HashSet<Vec<u8>> = list.0.iter().map(|e| e.ex_dir.0.to_vec()).collect();
    assert!(names.contains(b"/default".as_slice()));
    assert!(names.contains(b"/data".as_slice()));
}

#[tokio::test]
async fn read_only_exports_refuse_changes_and_access_says_so() {
    let policy = ExportPolicy {
        default: ExportOptions {
            read_only: true,
            ..ExportOptions::default()
        },
        volumes: HashMap::new(),
    };
    let h = start(policy).await;
    let mut c = Client::connect(h.addr).await;
    let root = c.root().await;
    let res = c
        .create(&root, "x", createhow3::UNCHECKED(sattr3::default()))
        .await;
    let Nfs3Result::Err((stat, _)) = res else {
        panic!("created on a read-only export")
    };
    assert_eq!(stat, nfsstat3::NFS3ERR_ROFS);
    let acc: ACCESS3res = c
        .nfs(
            4,
            &ACCESS3args {
                object: root.clone(),
                access: 0x3f,
            },
        )
        .await;
    let Nfs3Result::Ok(acc) = acc else {
        panic!("access failed")
    };
    assert_eq!(
        acc.access & (ACCESS3_MODIFY | ACCESS3_EXTEND | ACCESS3_DELETE),
        0
    );
    assert_ne!(acc.access & ACCESS3_READ, 0);
}

#[tokio::test]
async fn clients_outside_the_export_list_are_refused() {
    let policy = ExportPolicy {
        default: ExportOptions {
            clients: vec!["10.0.0.0/8".parse::<ClientSpec>().expect("spec")],
            ..ExportOptions::default()
        },
        volumes: HashMap::new(),
    };
    let h = start(policy).await;
    let root_handle = crate::handle::FileHandle::of(
        &h.fs
            .getattr(h.fs.volume("default").expect("vol").root)
            .expect("root"),
    )
    .to_nfs();
    let mut c = Client::connect(h.addr).await;
    assert!(matches!(
        c.mount("/default").await,
        mountres3::Err(nfs3_types::mount::mountstat3::MNT3ERR_ACCES)
    ));
    assert_eq!(
        stat_of(&c.getattr(&root_handle).await),
        nfsstat3::NFS3ERR_ACCES
    );
}

#[tokio::test]
async fn all_squash_creates_files_as_the_anonymous_user() {
    let (dir, fs) = test_fs();
    let root_ino = fs.volume("default").expect("vol").root;
    let open = SetAttr {
        mode: Some(0o777),
        ..SetAttr::default()
    };
    fs.setattr(&Credentials::root(), root_ino, &open, None)
        .expect("chmod");
    let policy = ExportPolicy {
        default: ExportOptions {
            all_squash: true,
            anonuid: 4242,
            anongid: 4343,
            ..ExportOptions::default()
        },
        volumes: HashMap::new(),
    };
    let h = start_on(dir, fs, policy).await;
    let mut c = Client::connect(h.addr).await;
    c.cred = sys_cred(1000, 1000, vec![]);
    let root = c.root().await;
    let Nfs3Result::Ok(made) = c
        .create(&root, "mine", createhow3::GUARDED(sattr3::default()))
        .await
    else {
        panic!("create failed");
    };
    let Nfs3Option::Some(attr) = made.obj_attributes else {
        panic!("no attributes")
    };
    assert_eq!((attr.uid, attr.gid), (4242, 4343));
}
